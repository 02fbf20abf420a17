from alpine:3.20 As base
run echo lower
Copy a.txt /a.txt

FROM base aS Final
WorkDir /srv
COPY --from=BASE /a.txt ./a.txt
