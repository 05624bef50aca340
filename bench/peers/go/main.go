// The benchmark's Go peer: net/http with encoding/json, no modules.
// No logging, request ids, metrics or timeouts.
//
//	go run main.go 8004
package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
)

type message struct {
	Message string `json:"message"`
}

func main() {
	port := "8004"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	http.HandleFunc("/hello_world", func(w http.ResponseWriter, r *http.Request) {
		body, err := json.Marshal(message{Message: "Hello World!"})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port, nil))
}
