// Package hclogslog adapts a *slog.Logger to the hclog.Logger interface
// that hashicorp/raft logs through, so a node's logs, Raft's included, go
// to one place.
package hclogslog

import (
	"context"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Logger is an hclog.Logger writing to a slog.Logger.
type Logger struct {
	l    *slog.Logger
	name string
	args []any
}

var _ hclog.Logger = (*Logger)(nil)

// New returns an hclog.Logger that writes to l.
func New(l *slog.Logger) *Logger { return &Logger{l: l} }

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
	lvl := toSlog(level)
	if !h.l.Enabled(context.Background(), lvl) {
		return
	}
	if h.name != "" {
		msg = h.name + ": " + msg
	}
	h.l.Log(context.Background(), lvl, msg, args...)
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

func (h *Logger) ImpliedArgs() []any { return h.args }

func (h *Logger) With(args ...any) hclog.Logger {
	return &Logger{l: h.l.With(args...), name: h.name, args: append(append([]any(nil), h.args...), args...)}
}

func (h *Logger) Name() string { return h.name }

func (h *Logger) Named(name string) hclog.Logger {
	if h.name != "" {
		name = h.name + "." + name
	}
	return &Logger{l: h.l, name: name, args: h.args}
}

func (h *Logger) ResetNamed(name string) hclog.Logger {
	return &Logger{l: h.l, name: name, args: h.args}
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
