module example.com/cachemounts

go 1.19
