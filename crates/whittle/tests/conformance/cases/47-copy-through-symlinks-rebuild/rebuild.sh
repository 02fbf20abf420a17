echo v2 > file
echo d2 > dir/f
