// A tiny Go service: built in a full Go toolchain image, shipped alone on `scratch`.
package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	name := "world"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	fmt.Printf("hello, %s! (a static %s binary on scratch, built by whittle)\n", name, runtime.Version())
}
