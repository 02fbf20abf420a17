FROM scratch
COPY --chmod=0755 bin/app /opt/bin/app
ENV PATH=/opt/bin:$PATH
ENTRYPOINT ["app"]
