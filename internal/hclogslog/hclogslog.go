// Package hclogslog adapts a *slog.Logger to the hclog.Logger interface
// that hashicorp/raft logs through, so a node's logs, Raft's included, go
// to one place and read like the rest of them:
//
//   - hclog's formatting values (hclog.Fmt, Hex, Octal, Binary, Quote)
//     become the text they stand for, not a list holding a format string;
//   - values that print themselves (fmt.Stringer) are written with
//     String, not as the "{}" a JSON handler makes of a struct with
//     unexported fields, and durations as "1.5s";
//   - a key is written once per line: keys given to New and keys set by
//     With win over the same key passed again (Raft logs its own "node"
//     under a node's "node"), as hclog's own With replaces a key;
//   - the few Raft errors that only say a peer is unreachable, which every
//     restart of a member causes, are warnings (see expected.go).
package hclogslog

import (
	"context"
	"io"
	"log"
	"log/slog"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Logger is an hclog.Logger writing to a slog.Logger.
type Logger struct {
	l       *slog.Logger // with the attributes given to New
	name    string
	fixed   []string    // keys given to New; never written again
	implied []slog.Attr // set by With, each key once
}

var _ hclog.Logger = (*Logger)(nil)

// New returns an hclog.Logger that writes to l, adding the alternating
// keys and values of args to every line. Those keys are never repeated:
// a line that passes one again is written with New's value.
func New(l *slog.Logger, args ...any) *Logger {
	attrs := merge(nil, nil, args)
	fixed := make([]string, len(attrs))
	with := make([]any, len(attrs))
	for i, a := range attrs {
		fixed[i], with[i] = a.Key, a
	}
	return &Logger{l: l.With(with...), fixed: fixed}
}

func toSlog(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Log writes msg at level with hclog-style alternating key/value args.
func (h *Logger) Log(level hclog.Level, msg string, args ...any) {
	lvl := toSlog(adjust(level, msg, args))
	ctx := context.Background()
	if !h.l.Enabled(ctx, lvl) {
		return
	}
	if h.name != "" {
		msg = h.name + ": " + msg
	}
	attrs := merge(slices.Clone(h.implied), h.fixed, args)
	h.l.LogAttrs(ctx, lvl, msg, attrs...)
}

// merge appends args, as attributes, to attrs: a key already in attrs has
// its value replaced, and a key in fixed is left out.
func merge(attrs []slog.Attr, fixed []string, args []any) []slog.Attr {
	for i := 0; i < len(args); i += 2 {
		var key string
		var v any
		if i+1 < len(args) {
			key, v = keyString(args[i]), args[i+1]
		} else {
			key, v = "EXTRA_VALUE_AT_END", args[i] // what hclog calls it
		}
		if contains(fixed, key) {
			continue
		}
		a := slog.Attr{Key: key, Value: value(v)}
		if j := index(attrs, key); j >= 0 {
			attrs[j] = a
		} else {
			attrs = append(attrs, a)
		}
	}
	return attrs
}

func keyString(k any) string {
	if s, ok := k.(string); ok {
		return s
	}
	return slog.AnyValue(k).String()
}

func contains(keys []string, key string) bool {
	for _, k := range keys {
		if k == key {
			return true
		}
	}
	return false
}

func index(attrs []slog.Attr, key string) int {
	for i, a := range attrs {
		if a.Key == key {
			return i
		}
	}
	return -1
}

func (h *Logger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *Logger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *Logger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *Logger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *Logger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *Logger) enabled(level hclog.Level) bool {
	return h.l.Enabled(context.Background(), toSlog(level))
}

func (h *Logger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *Logger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *Logger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *Logger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *Logger) IsError() bool { return h.enabled(hclog.Error) }

// ImpliedArgs returns the keys and values set by With.
func (h *Logger) ImpliedArgs() []any {
	out := make([]any, 0, 2*len(h.implied))
	for _, a := range h.implied {
		out = append(out, a.Key, a.Value.Any())
	}
	return out
}

// With returns a logger that adds args to every line; a key set before
// takes the new value, as with hclog's own loggers.
func (h *Logger) With(args ...any) hclog.Logger {
	c := *h
	c.implied = merge(slices.Clone(h.implied), h.fixed, args)
	return &c
}

func (h *Logger) Name() string { return h.name }

func (h *Logger) Named(name string) hclog.Logger {
	if h.name != "" {
		name = h.name + "." + name
	}
	return h.ResetNamed(name)
}

func (h *Logger) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

// SetLevel is ignored: the slog handler decides what is logged.
func (h *Logger) SetLevel(hclog.Level) {}

func (h *Logger) GetLevel() hclog.Level {
	for _, lvl := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn} {
		if h.enabled(lvl) {
			return lvl
		}
	}
	return hclog.Error
}

func (h *Logger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *Logger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writer{h}
}

type writer struct{ h *Logger }

func (w writer) Write(p []byte) (int, error) {
	w.h.Info(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
