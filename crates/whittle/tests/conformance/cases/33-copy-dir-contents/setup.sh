chmod 755 dir/run.sh
chmod 600 dir/a
