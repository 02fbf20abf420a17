FROM alpine:3.20 AS exec-form
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["server", "--port", "8080"]

FROM exec-form AS shell-form
CMD   echo   "spaced   args"  
ENTRYPOINT /usr/local/bin/app --config /etc/app.yaml
