package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

// Each client verb's output, for people and with --json, against one
// cluster: the whole output must match. Rows run in order, each on the
// state the rows before left.
func TestVerbOutputs(t *testing.T) {
	c := testCluster(t, nil)
	dir := t.TempDir()
	backup, backup2 := filepath.Join(dir, "b.bin"), filepath.Join(dir, "b2.bin")
	follower := c.Follower()
	rev, num := `\d+`, `\d+`
	cases := []struct {
		args []string
		want string // a regular expression of the whole stdout
	}{
		{[]string{"put", "a/1", "one"}, `OK revision ` + rev + `\n`},
		{[]string{"put", "a/2", "two", "--json"}, `\{"key":"a/2","revision":` + rev + `\}\n`},
		{[]string{"get", "a/1"}, `one\n`},
		{[]string{"get", "a/1", "--json"}, `\{"key":"a/1","value":"one","create_revision":` + rev + `,"mod_revision":` + rev + `,"version":1\}\n`},
		{[]string{"del", "a/2"}, `OK\n`},
		{[]string{"del", "a/2", "--json"}, `\{"key":"a/2","deleted":true\}\n`},
		{[]string{"put", "a/b/c", "deep"}, `OK revision ` + rev + `\n`},
		{[]string{"ls", "a"}, `a/1    one\na/b/c  deep\n`},
		{[]string{"ls", "a", "--json", "--limit", "1"}, `\{"revision":` + rev + `,"more":true,"kvs":\[\{"key":"a/1","value":"one","create_revision":` + rev + `,"mod_revision":` + rev + `,"version":1\}\]\}\n`},
		{[]string{"children", "a"}, `1\nb/\n`},
		{[]string{"children", "a", "--json"}, `\{"children":\[\{"name":"1","is_key":true,"has_children":false\},\{"name":"b","is_key":false,"has_children":true\}\]\}\n`},
		{[]string{"prefixes"}, `a\n`},
		{[]string{"prefixes", "--json"}, `\{"prefixes":\["a"\]\}\n`},
		{[]string{"watch", "a/1", "--key", "--from", "0", "--count", "1"}, `PUT a/1 = one \(revision ` + rev + `\)\n`},
		{[]string{"watch", "a", "--from", "0", "--count", "2", "--json"}, `\{"type":"put","key":"a/1","revision":` + rev + `,"value":"one","create_revision":` + rev + `,"version":1\}\n` +
			`\{"type":"put","key":"a/2","revision":` + rev + `,"value":"two","create_revision":` + rev + `,"version":1\}\n`},
		{[]string{"members"}, `ID +ADDRESS +CLIENT ADDRESS +VOTER +LEADER\n(node-\d +node-\d:7400 +node-\d:7400 +yes +(yes|no)\n){3}`},
		{[]string{"members", "--json"}, `\{"members":\[(\{"id":"node-\d","address":"node-\d:7400","client_address":"node-\d:7400","voter":true,"leader":(true|false)\},?){3}\]\}\n`},
		{[]string{"add-nonvoter", "extra", "node-9:7400"}, `OK added extra at node-9:7400\n`},
		{[]string{"remove", "extra"}, `OK removed extra\n`},
		{[]string{"add-nonvoter", "extra", "node-9:7400", "--json"}, `\{"ok":true\}\n`},
		{[]string{"remove", "extra", "--json"}, `\{"ok":true\}\n`},
		// A member removed and added back as a voter: it has the log, so
		// it catches up at once and is promoted.
		{[]string{"remove", follower.ID()}, `OK removed ` + follower.ID() + `\n`},
		{[]string{"add-voter", follower.ID(), follower.Addr()}, `OK added ` + follower.ID() + ` at ` + regexp.QuoteMeta(follower.Addr()) + `\n`},
		{[]string{"remove", follower.ID(), "--json"}, `\{"ok":true\}\n`},
		{[]string{"add-voter", follower.ID(), follower.Addr(), "--json"}, `\{"ok":true\}\n`},
		{[]string{"transfer-leader"}, `OK leadership moved to node-\d\n`},
		{[]string{"transfer-leader", "--json"}, `\{"ok":true,"leader":"node-\d"\}\n`},
		// Just after a transfer, node-0 may not know the new leader yet.
		{[]string{"status", c.Addr(0)}, regexp.QuoteMeta(c.Addr(0)) + `: node-0 (Leader|Follower|Candidate), leader (node-\d \(\S+\)|- \(-\)), term ` + num + `\n` +
			`  commit ` + num + `, applied ` + num + `, last snapshot ` + num + `; 2 keys, ` + num + ` B\n`},
		{[]string{"status", c.Addr(0), "--json"}, `\{"endpoint":"` + regexp.QuoteMeta(c.Addr(0)) + `","id":"node-0","address":"node-0:7400","client_address":"node-0:7400","state":"(Leader|Follower|Candidate)",("leader_id":"node-\d","leader_address":"[^"]+",)?"term":` + num +
			`,"commit_index":` + num + `,"applied_index":` + num + `(,"last_snapshot_index":` + num + `)?,"keys":2,"bytes":` + num + `\}\n`},
		{[]string{"backup", backup}, `OK backup written to ` + regexp.QuoteMeta(backup) + ` \(` + num + ` B\)\n`},
		{[]string{"backup", backup2, "--json"}, `\{"file":"` + regexp.QuoteMeta(backup2) + `","bytes":` + num + `\}\n`},
		{[]string{"restore", backup}, `OK restored ` + regexp.QuoteMeta(backup) + `\n`},
		{[]string{"restore", backup2, "--json"}, `\{"file":"` + regexp.QuoteMeta(backup2) + `","restored":true\}\n`},
	}
	for _, tc := range cases {
		r := mustRun(t, exitOK, tc.args...)
		if !regexp.MustCompile(`\A` + tc.want + `\z`).MatchString(r.stdout) {
			t.Errorf("skiff %s printed\n%q\nwant it to match\n%q", strings.Join(tc.args, " "), r.stdout, tc.want)
		}
	}
}

// Every client verb refuses bad flags and arguments with exit 2 before
// it reaches for the network, so a dead cluster changes nothing; with
// good ones, a dead cluster is exit 5, and nothing is printed on stdout.
func TestVerbErrors(t *testing.T) {
	dir := t.TempDir()
	backup := filepath.Join(dir, "b.bin")
	if err := os.WriteFile(backup, []byte("not a backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := map[string][]string{
		"put": {"k", "v"}, "get": {"k"}, "del": {"k"}, "ls": {"a"}, "children": {"a"}, "prefixes": {},
		"watch": {"a"}, "members": {}, "add-voter": {"x", "h:1"}, "add-nonvoter": {"x", "h:1"}, "remove": {"x"},
		"transfer-leader": {}, "status": {}, "backup": {filepath.Join(dir, "new.bin")}, "restore": {backup},
	}
	dead := []string{"--endpoints", freeAddr(t), "--timeout", "300ms"}
	for _, v := range verbs {
		if !v.client {
			continue
		}
		args, ok := good[v.name]
		if !ok {
			t.Errorf("no arguments for %s in this test", v.name)
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			cases := []struct {
				args []string
				code int
				want string // in stderr
			}{
				{append([]string{v.name, "--bogus"}, args...), exitUsage, "flag provided but not defined: -bogus"},
				{append([]string{v.name, "x", "y", "z"}, args...), exitUsage, v.name + " takes"},
				{append([]string{v.name}, args...), exitUnavailable, "node unavailable"},
				{append([]string{v.name, "--json"}, args...), exitUnavailable, "node unavailable"},
			}
			for _, c := range cases {
				r := runCLI(t, append(dead, c.args...)...)
				if r.code != c.code || !strings.Contains(r.stderr, c.want) || r.stdout != "" {
					t.Errorf("skiff %s: %v, want exit %d saying %q and nothing on stdout", strings.Join(c.args, " "), r, c.code, c.want)
				}
			}
		})
	}
}

// The verbs that are no clients refuse bad flags and arguments too, and
// the client verbs' checks of their flags and files come before the
// network.
func TestChecksBeforeNetwork(t *testing.T) {
	dir := t.TempDir()
	dead := []string{"--endpoints", freeAddr(t), "--timeout", "300ms"}
	for _, args := range [][]string{{"serve", "--bogus"}, {"serve", "extra"}, {"dev", "--bogus"}, {"dev", "extra"},
		{"inspect", "--bogus", dir}, {"inspect"}, {"inspect", dir, dir}} {
		if r := runCLI(t, args...); r.code != exitUsage || r.stdout != "" || !strings.Contains(r.stderr, "Run 'skiff help'") {
			t.Errorf("skiff %s: %v, want exit 2 and a pointer to the help", strings.Join(args, " "), r)
		}
	}
	// Keys no node takes are refused here; a node's own, lower key size
	// limit is its to check.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"put", "a//b", "v"}, "invalid key"},
		{[]string{"get", "/a"}, "invalid key"},
		{[]string{"del", "a\u202eb"}, "invalid key"},
		{[]string{"put", "--create", "--rev", "3", "k", "v"}, "exclude"},
		{[]string{"ls", "--limit", "-1"}, "negative"},
		{[]string{"children", "--limit", "-1"}, "negative"},
		{[]string{"watch", "a", "--count", "-1"}, "negative"},
		{[]string{"restore", filepath.Join(dir, "missing.bin")}, "no such file"},
		{[]string{"restore", dir}, "is a directory"},
		{[]string{"backup", filepath.Join(dir, "no/such/dir/b.bin")}, "not a directory"},
		{[]string{"backup", dir}, "is a directory"},
	} {
		r := runCLI(t, append(dead, c.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("skiff %s with the cluster down: %v, want exit 2 saying %q", strings.Join(c.args, " "), r, c.want)
		}
	}
}

// A watch resumed from a revision the history no longer holds fails
// with exit 3 and says where history starts.
func TestWatchCompacted(t *testing.T) {
	testCluster(t, &skifftest.Options{Quiet: true, Configure: func(_ int, cfg *skiff.Config) { cfg.WatchHistory = 2 }})
	putKeys(t, "h", 5)
	r := mustRun(t, exitNotFound, "watch", "h", "--from", "1", "--count", "1")
	if !regexp.MustCompile(`changes after revision 1 are gone; the oldest available is \d+; start again from the current state with --initial\n`).MatchString(r.stderr) {
		t.Fatalf("watch --from a compacted revision: %v, want it to say where history starts and what to do", r)
	}
	// From a revision the history holds, the watch replays what followed.
	put := decodeJSON[struct {
		Revision uint64 `json:"revision"`
	}](t, mustRun(t, exitOK, "put", "h/last", "x", "--json"))
	from := strconv.FormatUint(put.Revision-1, 10)
	want := fmt.Sprintf("PUT h/last = x (revision %d)\n", put.Revision)
	if r := mustRun(t, exitOK, "watch", "h", "--from", from, "--count", "1"); r.stdout != want {
		t.Fatalf("watch --from %s printed %q, want %q", from, r.stdout, want)
	}
}
