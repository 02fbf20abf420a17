// A Go program whose compiled packages (the standard library's included) live in a
// RUN --mount=type=cache directory, so a build after an edit recompiles only what changed.
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"

	"example.com/cachemounts/internal/words"
)

const text = "the cache mount keeps the cache, so the second build is fast"

func main() {
	// net/http and encoding/json are here for their compile time, which the cache saves.
	_ = http.StatusOK
	top, _ := json.Marshal(words.Count(text)[:3])
	fmt.Fprintf(os.Stdout, "top words: %s (built with a cache mount, by whittle)\n", top)
}
