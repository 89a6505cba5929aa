package hclogslog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// jsonLogger returns an adapter over a JSON handler and a function that
// returns the lines written so far, each as its raw text.
func jsonLogger(t *testing.T, args ...any) (*Logger, func() []string) {
	t.Helper()
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	return New(l, args...), func() []string {
		return strings.Split(strings.TrimSpace(buf.String()), "\n")
	}
}

type peer struct{ id, addr string } // unexported fields: JSON would write {}

func (p *peer) String() string { return p.id + "@" + p.addr }

type state uint32

func (s state) String() string { return [...]string{"Follower", "Candidate", "Leader"}[s] }

func TestValues(t *testing.T) {
	var nilPeer *peer
	tests := []struct {
		name string
		v    any
		want string // the value as JSON
	}{
		{"Fmt", hclog.Fmt("%d servers: %v", 2, []string{"a", "b"}), `"2 servers: [a b]"`},
		{"Fmt %+v", hclog.Fmt("%+v", struct{ ID string }{"s0"}), `"{ID:s0}"`},
		{"Hex", hclog.Hex(255), `"0xff"`},
		{"Octal", hclog.Octal(8), `"010"`},
		{"Binary", hclog.Binary(5), `"0b101"`},
		{"Quote", hclog.Quote("a\"b"), `"\"a\\\"b\""`},
		{"Stringer struct", &peer{"s1", "10.0.0.1:7400"}, `"s1@10.0.0.1:7400"`},
		{"Stringer int", state(2), `"Leader"`},
		{"nil Stringer", nilPeer, `"*hclogslog.peer(<String panicked>)"`},
		{"Duration", 1500 * time.Millisecond, `"1.5s"`},
		{"error", errors.New("boom"), `"boom"`},
		{"int", 42, `42`},
		{"string", "plain", `"plain"`},
		{"TextMarshaler", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), `"2026-01-02T03:04:05Z"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, lines := jsonLogger(t)
			l.Info("m", "v", tt.v)
			var rec map[string]json.RawMessage
			if err := json.Unmarshal([]byte(lines()[0]), &rec); err != nil {
				t.Fatal(err)
			}
			if got := string(rec["v"]); got != tt.want {
				t.Errorf("value of %#v = %s, want %s", tt.v, got, tt.want)
			}
		})
	}
}

// keys returns the keys of one JSON line in order, repeats included.
func keys(t *testing.T, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestKeysWrittenOnce(t *testing.T) {
	l, lines := jsonLogger(t, "node", "s0", "component", "raft")
	w := l.With("peer", "a").With("peer", "b", "term", 2)
	w.Info("entering candidate state", "node", &peer{"x", "y"}, "term", 3, "peer", "c")
	line := lines()[0]
	got := strings.Join(keys(t, line), ",")
	if want := "time,level,msg,node,component,peer,term"; got != want {
		t.Fatalf("keys = %s, want %s (line %s)", got, want, line)
	}
	var rec map[string]any
	json.Unmarshal([]byte(line), &rec)
	if rec["node"] != "s0" || rec["peer"] != "c" || rec["term"] != float64(3) {
		t.Errorf("line = %s, want node s0 (New's), peer c and term 3 (the call's)", line)
	}
	if got := fmt.Sprint(w.ImpliedArgs()); got != "[peer b term 2]" {
		t.Errorf("ImpliedArgs = %s, want [peer b term 2]", got)
	}
	l.Named("wal").Info("opened", "odd")
	if l := lines()[1]; !strings.Contains(l, `"msg":"wal: opened"`) || !strings.Contains(l, `"EXTRA_VALUE_AT_END":"odd"`) {
		t.Errorf("named line with an odd argument = %s", lines()[1])
	}
}

func TestUnreachablePeerIsAWarning(t *testing.T) {
	refused := status.Error(codes.Unavailable, "connection error: dial tcp 127.0.0.1:1: connect: connection refused")
	tests := []struct {
		msg   string
		args  []any
		level string
	}{
		{"failed to appendEntries to", []any{"peer", "s1", "error", refused}, "WARN"},
		{"failed to heartbeat to", []any{"peer", "s1", "backoff time", time.Second, "error", status.Error(codes.Canceled, "context canceled")}, "WARN"},
		{"failed to pipeline appendEntries", []any{"peer", "s1", "error", io.EOF}, "WARN"},
		{"failed to make requestVote RPC", []any{"target", "s1", "error", fmt.Errorf("wrapped: %w", io.EOF), "term", 3}, "WARN"},
		// The same calls failing for another reason, or other errors,
		// stay errors.
		{"failed to appendEntries to", []any{"peer", "s1", "error", errors.New("bad response")}, "ERROR"},
		{"failed to appendEntries to", []any{"peer", "s1"}, "ERROR"},
		{"failed to persist vote", []any{"error", refused}, "ERROR"},
	}
	for _, tt := range tests {
		l, lines := jsonLogger(t)
		l.Error(tt.msg, tt.args...)
		var rec map[string]any
		json.Unmarshal([]byte(lines()[0]), &rec)
		if rec["level"] != tt.level {
			t.Errorf("Error(%q, %v) written at %v, want %s", tt.msg, tt.args, rec["level"], tt.level)
		}
	}
}

func TestDisabledLevelsCostNothing(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), "node", "s0")
	allocs := testing.AllocsPerRun(100, func() { l.Debug("pre-vote received", "from", "s1", "term", 3) })
	if allocs > 0 || buf.Len() > 0 {
		t.Errorf("a disabled Debug line allocated %v times and wrote %q", allocs, buf.String())
	}
}
