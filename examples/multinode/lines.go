package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
)

// lineWriter prefixes each line a child writes and forwards it to out, or
// when out is nil keeps the last keep lines for dump. The first line
// starting with readyPrefix is not printed but its address is sent to
// ready.
type lineWriter struct {
	prefix string
	out    io.Writer
	ready  chan<- string
	keep   int

	mu      sync.Mutex
	buf     []byte
	sent    bool
	kept    []string
	dropped int
}

// dump writes the kept lines to out.
func (w *lineWriter) dump(out io.Writer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dropped > 0 {
		fmt.Fprintf(out, "%s(%d earlier lines not kept)\n", w.prefix, w.dropped)
	}
	for _, line := range w.kept {
		fmt.Fprintf(out, "%s%s\n", w.prefix, line)
	}
	if len(w.buf) > 0 {
		fmt.Fprintf(out, "%s%s\n", w.prefix, w.buf)
	}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if w.ready != nil && !w.sent && strings.HasPrefix(line, readyPrefix) {
			w.sent = true
			w.ready <- strings.TrimSpace(strings.TrimPrefix(line, readyPrefix))
			continue
		}
		if w.out != nil {
			fmt.Fprintf(w.out, "%s%s\n", w.prefix, line)
			continue
		}
		if len(w.kept) == w.keep {
			w.kept = w.kept[1:]
			w.dropped++
		}
		w.kept = append(w.kept, line)
	}
	return len(p), nil
}
