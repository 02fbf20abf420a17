FROM alpine:3.20
ENV NAME=world
ENV Q1="double $NAME" Q2='single $NAME' Q3=mixed"$NAME"'$NAME' Q4=esc\$NAME
ENV Q5="a \"quoted\" word" Q6=\\backslash Q7=$ Q8=${NAME}_suffix Q9=$NAME_suffix
LABEL l1="tab\there" l2=nospace\ here
WORKDIR "/srv/$NAME dir"
