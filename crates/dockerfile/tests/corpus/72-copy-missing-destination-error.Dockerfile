FROM eclipse-temurin:21-jre
COPY app.jar
