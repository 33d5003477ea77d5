package api

import (
	"bytes"
	"io"
	"net/http"
)

func readAll(r *http.Request) ([]byte, error) { return io.ReadAll(r.Body) }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
