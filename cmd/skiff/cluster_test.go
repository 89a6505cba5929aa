package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

type membersJSON struct {
	Members []memberJSON `json:"members"`
}

func leaderOf(ms membersJSON) string {
	for _, m := range ms.Members {
		if m.Leader {
			return m.ID
		}
	}
	return ""
}

// members, add-nonvoter, add-voter, remove and transfer-leader.
func TestMembership(t *testing.T) {
	c := testCluster(t, nil)
	r := mustRun(t, exitOK, "members")
	if !strings.HasPrefix(r.stdout, "ID ") || strings.Count(r.stdout, "\n") != 4 || !strings.Contains(r.stdout, "node-1") {
		t.Fatalf("members printed\n%s", r.stdout)
	}
	ms := decodeJSON[membersJSON](t, mustRun(t, exitOK, "members", "--json"))
	if len(ms.Members) != 3 || leaderOf(ms) == "" || !ms.Members[0].Voter {
		t.Fatalf("members --json = %+v", ms)
	}

	mustRun(t, exitOK, "add-nonvoter", "extra", "node-9:7400")
	ms = decodeJSON[membersJSON](t, mustRun(t, exitOK, "members", "--json"))
	if len(ms.Members) != 4 {
		t.Fatalf("after add-nonvoter: %+v", ms)
	}
	// Another ID at a member's address conflicts with the member.
	mustRun(t, exitPrecondition, "add-nonvoter", "impostor", c.Addr(1))
	mustRun(t, exitOK, "remove", "extra")
	mustRun(t, exitNotFound, "remove", "extra")

	old := leaderOf(ms)
	r = mustRun(t, exitOK, "transfer-leader")
	if !strings.HasPrefix(r.stdout, "OK leadership moved") {
		t.Fatalf("transfer-leader printed %q", r.stdout)
	}
	var target string
	for i := range 3 {
		if id := c.Node(i).ID(); id != old && target == "" {
			target = id
		}
	}
	eventually(t, 10*time.Second, func() error {
		runCLI(t, "transfer-leader", target)
		if l := leaderOf(decodeJSON[membersJSON](t, mustRun(t, exitOK, "members", "--json"))); l != target {
			return errNotYet("leader " + l)
		}
		return nil
	})
	mustRun(t, exitUsage, "transfer-leader", "no such id")

	// A voter is promoted only once it has caught up: one that cannot be
	// reached stays a non-voter, and the deadline makes the exit code 5.
	mustRun(t, exitUnavailable, "add-voter", "ghost", "node-7:7400", "--timeout", "2s")
	ms = decodeJSON[membersJSON](t, mustRun(t, exitOK, "members", "--json"))
	for _, m := range ms.Members {
		if m.ID == "ghost" && m.Voter {
			t.Fatalf("an unreachable member became a voter: %+v", ms)
		}
	}
	mustRun(t, exitOK, "remove", "ghost")
}

// status asks every endpoint, or one; an endpoint that does not answer
// is reported, and makes the exit code 5.
func TestStatus(t *testing.T) {
	c := testCluster(t, nil)
	mustRun(t, exitOK, "put", "k", "v")
	r := mustRun(t, exitOK, "status")
	if strings.Count(r.stdout, ", leader node-") != 3 || !strings.Contains(r.stdout, "1 keys") {
		t.Fatalf("status printed\n%s", r.stdout)
	}
	lines := strings.Split(strings.TrimSpace(mustRun(t, exitOK, "status", "--json").stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("status --json printed %d lines, want one per endpoint", len(lines))
	}
	// A follower applies the put after the leader acknowledged it.
	eventually(t, 10*time.Second, func() error {
		st := decodeJSON[statusJSON](t, mustRun(t, exitOK, "status", c.Addr(1), "--json"))
		if st.Endpoint != c.Addr(1) || st.ID != c.Node(1).ID() || st.Keys != 1 || st.LeaderID == "" {
			return fmt.Errorf("status ADDR --json = %+v", st)
		}
		return nil
	})
	c.Stop(2)
	r = mustRun(t, exitUnavailable, "status", "--timeout", "3s")
	if !strings.Contains(r.stdout, c.Addr(2)+": ") || strings.Count(r.stdout, "term") != 2 {
		t.Fatalf("status with a node down printed\n%s", r.stdout)
	}
}

// Exit codes for a cluster that cannot be reached and for refused
// credentials.
func TestUnavailableAndDenied(t *testing.T) {
	testCluster(t, &skifftest.Options{Configure: func(i int, cfg *skiff.Config) {
		cfg.ClusterSecret = "a secret of sixteen bytes or more"
		cfg.ClientTokens = map[string]skiff.Role{"ro": skiff.RoleReadOnly, "rw": skiff.RoleReadWrite}
	}})
	mustRun(t, exitDenied, "get", "k")
	mustRun(t, exitDenied, "get", "k", "--token", "wrong")
	t.Setenv("SKIFF_TOKEN", "ro")
	mustRun(t, exitNotFound, "get", "k")
	mustRun(t, exitDenied, "put", "k", "v")
	mustRun(t, exitOK, "put", "k", "v", "--token", "rw")
	mustRun(t, exitDenied, "backup", t.TempDir()+"/b", "--token", "rw")
	mustRun(t, exitDenied, "remove", "node-0", "--token", "rw")
	r := mustRun(t, exitUnavailable, "get", "k", "--endpoints", "nowhere:1", "--timeout", "1s")
	if !strings.Contains(r.stderr, "unavailable") {
		t.Fatalf("get from nowhere: %v", r)
	}
}
