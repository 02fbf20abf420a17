mkdir empty
mkdir -p deep/empty/dirs
chmod 700 private
chmod 1777 sticky
chmod 4755 suid
chmod 750 exec.sh
chmod 444 plain
