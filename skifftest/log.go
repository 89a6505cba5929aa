package skifftest

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
)

// tbHandler writes log records to a test's log, so that a failing test
// shows what its nodes said (go test prints a passing test's log only
// with -v). Records that arrive after the cluster has closed are dropped:
// testing panics on a Log after the test has ended, and a node's last
// goroutines may still log then.
type tbHandler struct {
	h     slog.Handler
	out   *tbWriter
	level slog.Leveler
}

type tbWriter struct {
	tb   testing.TB
	mu   sync.Mutex
	done bool
	buf  bytes.Buffer
}

func newTBLogger(tb testing.TB, level slog.Leveler) (*slog.Logger, *tbWriter) {
	w := &tbWriter{tb: tb}
	h := slog.NewTextHandler(&w.buf, &slog.HandlerOptions{Level: level})
	return slog.New(&tbHandler{h: h, out: w, level: level}), w
}

func (h *tbHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *tbHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	if h.out.done {
		return nil
	}
	// The text handler writes one line into buf, which goes out whole.
	if err := h.h.Handle(ctx, r); err != nil {
		return err
	}
	h.out.tb.Log(string(bytes.TrimRight(h.out.buf.Bytes(), "\n")))
	h.out.buf.Reset()
	return nil
}

func (h *tbHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &tbHandler{h: h.h.WithAttrs(as), out: h.out, level: h.level}
}

func (h *tbHandler) WithGroup(name string) slog.Handler {
	return &tbHandler{h: h.h.WithGroup(name), out: h.out, level: h.level}
}

// stop drops every later record.
func (w *tbWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
