package skiff_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthOf asks node i of c for its gRPC health, as an orchestrator
// would, from outside the cluster (a partition does not cut it off).
func healthOf(t testing.TB, c *skifftest.Cluster, i int) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+c.Addr(i), grpc.WithContextDialer(c.Dialer()),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check of node %d: %v", i, err)
	}
	return resp.Status
}

// A node cut off from its cluster loses its leader: /readyz turns 503
// saying why and the gRPC health check NOT_SERVING, while /healthz stays
// 200 (the process is fine). After healing both come back.
func TestReadinessFollowsTheLeader(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	l := c.WaitForLeader()
	i := (l + 1) % 3
	h := c.Node(i).HTTPHandler(skiff.HTTPOptions{})
	if code, body := get(t, h, "/readyz"); code != http.StatusOK {
		t.Fatalf("GET /readyz on a healthy follower = %d %q, want 200", code, body)
	}
	if st := healthOf(t, c, i); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health of a healthy follower = %v, want SERVING", st)
	}

	c.Partition(i)
	waitFor(t, 10*time.Second, "/readyz still 200 on the cut-off node", func() bool {
		code, _ := get(t, h, "/readyz")
		return code == http.StatusServiceUnavailable
	})
	if _, body := get(t, h, "/readyz"); !strings.Contains(body, "no leader") {
		t.Errorf("GET /readyz on the cut-off node says %q, want it to say no leader", body)
	}
	if st := healthOf(t, c, i); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health of the cut-off node = %v, want NOT_SERVING", st)
	}
	if code, _ := get(t, h, "/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz on the cut-off node = %d, want 200", code)
	}
	if v := scrapeMetrics(t, h).Must(t, "skiff_ready"); v != 0 {
		t.Errorf("skiff_ready on the cut-off node = %v, want 0", v)
	}

	c.Heal()
	waitFor(t, 10*time.Second, "/readyz not back to 200 after healing", func() bool {
		code, _ := get(t, h, "/readyz")
		return code == http.StatusOK
	})
	if st := healthOf(t, c, i); st != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health after healing = %v, want SERVING", st)
	}
}

// Until HTTP metrics are asked for, the handler's health endpoints work
// without them; /debug/pprof is there only when asked for.
func TestHTTPHandlerEndpoints(t *testing.T) {
	n := openNode(t, testConfig(t.TempDir()))
	plainH := n.HTTPHandler(skiff.HTTPOptions{})
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/debug/pprof/": 404, "/nothing": 404} {
		if code, body := get(t, plainH, path); code != want {
			t.Errorf("GET %s = %d (%q), want %d", path, code, body, want)
		}
	}
	prof := n.HTTPHandler(skiff.HTTPOptions{Pprof: true})
	for path, want := range map[string]string{
		"/debug/pprof/":                   "goroutine",
		"/debug/pprof/goroutine?debug=1":  "goroutine profile",
		"/debug/pprof/heap?debug=1":       "heap profile",
		"/debug/pprof/profile?seconds=.1": "",
		"/debug/pprof/trace?seconds=.1":   "",
	} {
		code, body := get(t, prof, path)
		if code != 200 || !strings.Contains(body, want) || len(body) == 0 {
			t.Errorf("GET %s = %d, %d bytes, want 200 with %q", path, code, len(body), want)
		}
	}
	if code, _ := get(t, prof, "/debug/pprof/profile?seconds=600"); code != http.StatusBadRequest {
		t.Errorf("a 600 s CPU profile: %d, want 400", code)
	}
	if code, _ := get(t, prof, "/debug/pprof/nosuch"); code != http.StatusNotFound {
		t.Errorf("an unknown profile: %d, want 404", code)
	}
	n.Close()
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, plainH, path); code != http.StatusServiceUnavailable || !strings.Contains(body, "closed") {
			t.Errorf("GET %s after Close = %d %q, want 503 saying closed", path, code, body)
		}
	}
	// Metrics still answer for a closed node.
	if v := scrapeMetrics(t, plainH).Must(t, "skiff_node_state", "state", "shutdown"); v != 1 {
		t.Errorf("skiff_node_state{state=shutdown} after Close = %v, want 1", v)
	}
}
