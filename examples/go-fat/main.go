// The same tiny Go program as ../go-scratch, shipped the "before" way: in the toolchain image.
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
	fmt.Printf("hello, %s! (a %s binary in the full toolchain image, built by whittle)\n", name, runtime.Version())
}
