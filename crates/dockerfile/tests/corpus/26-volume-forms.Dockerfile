FROM postgres:16
ENV PGDATA=/var/lib/postgresql/data
VOLUME ["/var/lib/postgresql/data", "/backups"]
VOLUME $PGDATA/archive /tmp/scratch
VOLUME ["$PGDATA/wal"]
