package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// put, get and del, for people and for scripts, with the exit codes of
// their failures.
func TestPutGetDel(t *testing.T) {
	testCluster(t, nil)
	r := mustRun(t, exitOK, "put", "greeting", "hello")
	if !strings.HasPrefix(r.stdout, "OK revision ") {
		t.Fatalf("put printed %q, want OK revision N", r.stdout)
	}
	rev := strings.TrimSpace(strings.TrimPrefix(r.stdout, "OK revision "))
	if r := mustRun(t, exitOK, "get", "greeting"); r.stdout != "hello\n" {
		t.Fatalf("get printed %q, want hello and a newline", r.stdout)
	}
	got := decodeJSON[map[string]any](t, mustRun(t, exitOK, "get", "--json", "greeting"))
	if got["key"] != "greeting" || got["value"] != "hello" || strconv.FormatFloat(got["mod_revision"].(float64), 'f', -1, 64) != rev {
		t.Fatalf("get --json = %v, want greeting, hello, mod_revision %s", got, rev)
	}
	// Flags may come after the arguments, and before the verb.
	mustRun(t, exitPrecondition, "put", "greeting", "again", "--create")
	mustRun(t, exitPrecondition, "--json", "put", "--rev", "1", "greeting", "again")
	mustRun(t, exitOK, "put", "--rev", rev, "greeting", "swapped")
	mustRun(t, exitPrecondition, "del", "greeting", "--rev", rev)
	mustRun(t, exitOK, "put", "--create", "fresh", "1")

	withStdin(t, "line one\nline two\n")
	mustRun(t, exitOK, "put", "multi", "-")
	if r := mustRun(t, exitOK, "get", "multi"); r.stdout != "line one\nline two\n" {
		t.Fatalf("get of a value from stdin printed %q", r.stdout)
	}
	withStdin(t, "\xff\x00binary")
	mustRun(t, exitOK, "put", "bin", "-")
	if got := decodeJSON[map[string]any](t, mustRun(t, exitOK, "get", "bin", "--json")); got["value_base64"] != "/wBiaW5hcnk=" {
		t.Fatalf("get --json of a binary value = %v, want value_base64", got)
	}

	if r := mustRun(t, exitOK, "del", "greeting", "--json"); strings.TrimSpace(r.stdout) != `{"key":"greeting","deleted":true}` {
		t.Fatalf("del --json printed %q", r.stdout)
	}
	r = mustRun(t, exitNotFound, "get", "greeting")
	if r.stdout != "" || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("get of a deleted key: %v", r)
	}
	mustRun(t, exitOK, "del", "greeting") // deleting an absent key succeeds
	mustRun(t, exitOK, "get", "--stale", "fresh")
}

// Bad input is a usage error (exit 2) that names the problem, and never
// reaches the cluster as anything but a refused request.
func TestBadInput(t *testing.T) {
	testCluster(t, nil)
	cases := []struct {
		args []string
		want string // in stderr
	}{
		{[]string{}, "no verb"},
		{[]string{"frobnicate"}, "unknown verb"},
		{[]string{"put", "k"}, "KEY and VALUE"},
		{[]string{"put", "a", "b", "c"}, "KEY and VALUE"},
		{[]string{"get"}, "KEY"},
		{[]string{"put", "bad//key", "v"}, "empty segment"},
		{[]string{"put", "/lead", "v"}, "invalid key"},
		{[]string{"get", "--bogus", "k"}, "flag provided but not defined"},
		{[]string{"--timeout", "soon", "get", "k"}, "invalid value"},
		{[]string{"put", "--rev", "-1", "k", "v"}, "invalid value"},
		{[]string{"put", "--create", "--rev", "3", "k", "v"}, "exclude"},
		{[]string{"ls", "--limit", "-1"}, "negative"},
		{[]string{"watch"}, "PREFIX"},
		{[]string{"watch", "a", "--count", "-2"}, "negative"},
		{[]string{"add-voter", "only-id"}, "ID and ADDR"},
		{[]string{"remove"}, "ID"},
		{[]string{"status", "a", "b"}, "ADDR"},
		{[]string{"backup"}, "FILE"},
		{[]string{"restore", "/does/not/exist"}, "open the backup"},
		{[]string{"inspect", "/does/not/exist"}, "no such file"},
		{[]string{"help", "frobnicate"}, "unknown verb"},
	}
	for _, c := range cases {
		r := runCLI(t, c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("skiff %s: %v, want exit 2 saying %q", strings.Join(c.args, " "), r, c.want)
		}
	}
	t.Setenv("SKIFF_ENDPOINTS", "")
	if r := runCLI(t, "get", "k"); r.code != exitUsage || !strings.Contains(r.stderr, "endpoints") {
		t.Errorf("get without endpoints: %v, want exit 2 asking for endpoints", r)
	}
	t.Setenv("SKIFF_TIMEOUT", "later")
	if r := runCLI(t, "get", "k"); r.code != exitUsage || !strings.Contains(r.stderr, "SKIFF_TIMEOUT") {
		t.Errorf("get with a bad SKIFF_TIMEOUT: %v, want exit 2 naming it", r)
	}
}

// Help goes to stdout with exit 0, and lists every verb and exit code.
func TestHelp(t *testing.T) {
	r := mustRun(t, exitOK, "help")
	for _, v := range verbs {
		if !strings.Contains(r.stdout, "  "+v.name+" ") {
			t.Errorf("help does not list %s", v.name)
		}
	}
	for _, want := range []string{"Exit codes", "indeterminate", "SKIFF_ENDPOINTS"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help does not mention %q", want)
		}
	}
	for _, v := range verbs {
		for _, args := range [][]string{{"help", v.name}, {v.name, "-h"}} {
			r := mustRun(t, exitOK, args...)
			if !strings.Contains(r.stdout, "Usage: skiff "+v.name) || !strings.Contains(r.stdout, "Exit codes") {
				t.Errorf("skiff %s printed %q", strings.Join(args, " "), r.stdout)
			}
		}
	}
	if r := mustRun(t, exitOK, "help", "watch"); !strings.Contains(r.stdout, "-count") || strings.Contains(r.stdout, "client certificate's key (env") {
		t.Errorf("help watch: want its own --key and no TLS --key:\n%s", r.stdout)
	}
}

// ls, children and prefixes, with paging flags.
func TestListings(t *testing.T) {
	testCluster(t, nil)
	for _, k := range []string{"users/alice", "users/bob/email", "users/bob", "usersx/eve", "jobs/1"} {
		mustRun(t, exitOK, "put", k, "v:"+k)
	}
	r := mustRun(t, exitOK, "ls", "users")
	if want := "users/alice      v:users/alice\nusers/bob        v:users/bob\nusers/bob/email  v:users/bob/email\n"; r.stdout != want {
		t.Fatalf("ls users printed\n%s\nwant\n%s", r.stdout, want)
	}
	r = mustRun(t, exitOK, "ls", "users", "--keys-only", "--limit", "1", "--after", "users/alice")
	if r.stdout != "users/bob\n" || !strings.Contains(r.stderr, `--after "users/bob"`) {
		t.Fatalf("ls with paging: %v", r)
	}
	type listing struct {
		Revision uint64 `json:"revision"`
		More     bool   `json:"more"`
		KVs      []struct {
			Key   string  `json:"key"`
			Value *string `json:"value"`
		} `json:"kvs"`
	}
	l := decodeJSON[listing](t, mustRun(t, exitOK, "ls", "--json", "--keys-only", "--limit", "2"))
	if len(l.KVs) != 2 || !l.More || l.Revision == 0 || l.KVs[0].Key != "jobs/1" || l.KVs[0].Value != nil {
		t.Fatalf("ls --json --keys-only --limit 2 = %+v", l)
	}
	if r := mustRun(t, exitOK, "ls", "nothing/here", "--json"); strings.TrimSpace(r.stdout) == "" || !strings.Contains(r.stdout, `"kvs":[]`) {
		t.Fatalf("an empty ls --json printed %q", r.stdout)
	}
	if r := mustRun(t, exitOK, "children", "users"); r.stdout != "alice\nbob\nbob/\n" {
		t.Fatalf("children users printed %q", r.stdout)
	}
	ch := decodeJSON[struct {
		Children []struct {
			Name        string `json:"name"`
			IsKey       bool   `json:"is_key"`
			HasChildren bool   `json:"has_children"`
		} `json:"children"`
	}](t, mustRun(t, exitOK, "children", "users", "--json"))
	if len(ch.Children) != 2 || ch.Children[1].Name != "bob" || !ch.Children[1].IsKey || !ch.Children[1].HasChildren {
		t.Fatalf("children --json = %+v", ch)
	}
	if r := mustRun(t, exitOK, "prefixes"); r.stdout != "jobs\nusers\nusersx\n" {
		t.Fatalf("prefixes printed %q", r.stdout)
	}
	if r := mustRun(t, exitOK, "prefixes", "--json"); strings.TrimSpace(r.stdout) != `{"prefixes":["jobs","users","usersx"]}` {
		t.Fatalf("prefixes --json printed %q", r.stdout)
	}
}

// watch prints events as they come, one JSON object each with --json,
// and ends cleanly when interrupted.
func TestWatch(t *testing.T) {
	testCluster(t, nil)
	mustRun(t, exitOK, "put", "cfg/a", "1")
	var out, errb syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- Run(ctx, []string{"watch", "cfg", "--json", "--initial"}, &out, &errb) }()
	eventually(t, 10*time.Second, func() error {
		if !strings.Contains(out.String(), `"type":"synced"`) {
			return errNotYet(out.String())
		}
		return nil
	})
	mustRun(t, exitOK, "put", "cfg/b", "2")
	mustRun(t, exitOK, "del", "cfg/a")
	eventually(t, 10*time.Second, func() error {
		if !strings.Contains(out.String(), `"type":"delete","key":"cfg/a"`) {
			return errNotYet(out.String())
		}
		return nil
	})
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("interrupted watch exited %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	wantTypes := []string{`"type":"put","key":"cfg/a"`, `"type":"synced"`, `"type":"put","key":"cfg/b"`, `"type":"delete","key":"cfg/a"`}
	if len(lines) != len(wantTypes) {
		t.Fatalf("watch printed %d lines, want %d:\n%s", len(lines), len(wantTypes), out.String())
	}
	for i, w := range wantTypes {
		if !strings.Contains(lines[i], w) {
			t.Errorf("event %d = %s, want %s", i, lines[i], w)
		}
	}
	// Resuming from the revision of the first put replays what followed;
	// --key watches one key.
	r := mustRun(t, exitOK, "watch", "cfg", "--from", "1", "--count", "3")
	if strings.Count(r.stdout, "\n") != 3 || !strings.HasPrefix(r.stdout, "PUT cfg/a = 1") {
		t.Fatalf("watch --from 1 --count 3 printed %q", r.stdout)
	}
	r = mustRun(t, exitOK, "watch", "cfg/b", "--key", "--initial", "--count", "2")
	if !strings.HasPrefix(r.stdout, "PUT cfg/b = 2") || !strings.Contains(r.stdout, "SYNCED at revision") {
		t.Fatalf("watch --key printed %q", r.stdout)
	}
	// A watch with a --timeout ends when it passes, and that is no error.
	mustRun(t, exitOK, "watch", "cfg", "--timeout", "300ms")
}

type errNotYet string

func (e errNotYet) Error() string { return "not yet; so far: " + string(e) }
