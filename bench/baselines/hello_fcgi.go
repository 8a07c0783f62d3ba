// Go net/http/fcgi hello, standard library only: serves the listening socket on
// descriptor 0 (spawn-fcgi puts it there).
package main

import (
	"io"
	"net/http"
	"net/http/fcgi"
)

func main() {
	fcgi.Serve(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "Hello, world!")
	}))
}
