FROM nginx:1.27-alpine
RUN <<FILE1 cat > /file1 && <<FILE2 cat > /file2
I am
first
FILE1
I am
second
FILE2
COPY <<robots.txt <<humans.txt /usr/share/nginx/html/
User-agent: *
Disallow: /
robots.txt
Made by the platform team
humans.txt
