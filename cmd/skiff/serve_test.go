package main

import (
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
)

func configFor(t *testing.T, args ...string) (skiff.Config, error) {
	t.Helper()
	_, cfg, err := serveConfig(flag.NewFlagSet("serve", flag.ContinueOnError), args, io.Discard)
	return cfg, err
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every Config field is reachable from a flag; the command line beats the
// environment, which beats the config file.
func TestServeConfig(t *testing.T) {
	secretFile := writeFile(t, "secret", "sixteen bytes or more\n")
	tokens := writeFile(t, "tokens", "# ops\nadmin t-admin\nreadwrite  t-app\n\n")
	file := writeFile(t, "skiff.json", `{"dir": "/from/file", "id": "n1", "bind-addr": "127.0.0.1:7401",
		"initial-cluster": {"n1": "127.0.0.1:7401", "n2": "127.0.0.1:7402"}, "join-as-nonvoter": true,
		"snapshot-size-ratio": 0.25, "quota-bytes": "1GiB", "max-watches": 7, "election-timeout": "2s",
		"peer-names": ["*.peers.internal"], "log-store": "wal"}`)
	t.Setenv("SKIFF_DIR", "/from/env")
	t.Setenv("SKIFF_MAX_WATCHES", "9")
	cfg, err := configFor(t, "--config", file, "--max-watches", "11", "--heartbeat-timeout", "1500ms",
		"--cluster-secret-file", secretFile, "--client-tokens-file", tokens, "--client-names", "app.internal=readonly",
		"--anonymous-role", "readonly", "--advertise-addr", "10.0.0.1:7401", "--client-bind-addr", "127.0.0.1:7501",
		"--client-advertise-addr", "10.0.0.1:7501", "--insecure-open", "--max-value-size", "2MiB", "--max-key-size", "1024",
		"--snapshot-threshold", "10", "--snapshot-max-entries", "20", "--snapshot-interval", "3s", "--trailing-logs", "30",
		"--retain-snapshots", "4", "--watch-history", "50", "--watch-history-bytes", "1MiB", "--leader-lease-timeout", "700ms")
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]bool{
		"Dir from the environment over the file":  cfg.Dir == "/from/env",
		"MaxWatches from the command line":        cfg.MaxWatches == 11,
		"ID, BindAddr from the file":              cfg.ID == "n1" && cfg.BindAddr == "127.0.0.1:7401",
		"InitialCluster as an object":             len(cfg.InitialCluster) == 2 && cfg.InitialCluster[1] == skiff.Peer{ID: "n2", Address: "127.0.0.1:7402"},
		"JoinAsNonvoter, LogStore":                cfg.JoinAsNonvoter && cfg.LogStore == skiff.LogStoreWAL,
		"SnapshotSizeRatio, QuotaBytes":           cfg.SnapshotSizeRatio == 0.25 && cfg.QuotaBytes == 1<<30,
		"timeouts":                                cfg.ElectionTimeout == 2*time.Second && cfg.HeartbeatTimeout == 1500*time.Millisecond && cfg.LeaderLeaseTimeout == 700*time.Millisecond,
		"ClusterSecret from a file, newline gone": cfg.ClusterSecret == "sixteen bytes or more",
		"ClientTokens from a file":                len(cfg.ClientTokens) == 2 && cfg.ClientTokens["t-app"] == skiff.RoleReadWrite && cfg.ClientTokens["t-admin"] == skiff.RoleAdmin,
		"ClientNames, AnonymousRole, PeerNames":   cfg.ClientNames["app.internal"] == skiff.RoleReadOnly && cfg.AnonymousRole == skiff.RoleReadOnly && cfg.PeerNames[0] == "*.peers.internal",
		"addresses":                               cfg.AdvertiseAddr == "10.0.0.1:7401" && cfg.ClientBindAddr == "127.0.0.1:7501" && cfg.ClientAdvertiseAddr == "10.0.0.1:7501",
		"InsecureOpen, sizes":                     cfg.InsecureOpen && cfg.MaxValueSize == 2<<20 && cfg.MaxKeySize == 1024,
		"snapshot policy":                         cfg.SnapshotThreshold == 10 && cfg.SnapshotMaxEntries == 20 && cfg.SnapshotInterval == 3*time.Second && cfg.TrailingLogs == 30 && cfg.RetainSnapshots == 4,
		"watch history":                           cfg.WatchHistory == 50 && cfg.WatchHistoryBytes == 1<<20,
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("%s: config = %+v", what, cfg)
		}
	}
	// Defaults are DefaultConfig's.
	t.Setenv("SKIFF_DIR", "")
	t.Setenv("SKIFF_MAX_WATCHES", "")
	os.Unsetenv("SKIFF_MAX_WATCHES")
	cfg, err = configFor(t, "--dir", "d", "--bind-addr", "127.0.0.1:0", "--join", "a:1,b:2")
	def := skiff.DefaultConfig()
	if err != nil || cfg.QuotaBytes != def.QuotaBytes || cfg.SnapshotSizeRatio != def.SnapshotSizeRatio || len(cfg.Join) != 2 || cfg.TLS != nil {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
}

func TestServeConfigErrors(t *testing.T) {
	cases := map[string][]string{
		"unknown flag":         {"--bogus"},
		"argument":             {"extra"},
		"bad size":             {"--quota-bytes", "lots"},
		"bad duration":         {"--election-timeout", "5"},
		"bad initial cluster":  {"--initial-cluster", "n1"},
		"bad client names":     {"--client-names", "noequals"},
		"secret twice":         {"--cluster-secret", "x", "--cluster-secret-file", "/etc/hostname"},
		"missing secret file":  {"--cluster-secret-file", "/does/not/exist"},
		"missing tokens file":  {"--client-tokens-file", "/does/not/exist"},
		"cert without key":     {"--tls-cert", "/etc/hostname"},
		"ca without cert":      {"--tls-ca", "/etc/hostname"},
		"missing config file":  {"--config", "/does/not/exist"},
		"unknown config key":   {"--config", writeFile(t, "a.json", `{"bogus": 1}`)},
		"nested config":        {"--config", writeFile(t, "b.json", `{"config": "x.json"}`)},
		"config not an object": {"--config", writeFile(t, "c.json", `[1]`)},
		"bad config value":     {"--config", writeFile(t, "d.json", `{"join": [1]}`)},
		"bad tokens line":      {"--client-tokens-file", writeFile(t, "tokens", "admin\n")},
	}
	for name, args := range cases {
		if _, err := configFor(t, args...); exitCode(err) != exitUsage {
			t.Errorf("%s: err = %v, want a usage error", name, err)
		}
	}
	// What Open checks itself is a usage error too (ErrConfig), and so are
	// bad log settings.
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"no dir":              {"serve", "--bind-addr", "127.0.0.1:0"},
		"open beyond lo":      {"serve", "--dir", dir, "--bind-addr", "0.0.0.0:0", "--advertise-addr", "192.0.2.1:7400"},
		"short secret":        {"serve", "--dir", dir, "--bind-addr", "127.0.0.1:0", "--cluster-secret", "short"},
		"unknown role":        {"serve", "--dir", dir, "--bind-addr", "127.0.0.1:0", "--cluster-secret", "sixteen bytes or more", "--anonymous-role", "root"},
		"bad log format":      {"serve", "--dir", dir, "--bind-addr", "127.0.0.1:0", "--log-format", "xml"},
		"bad log level":       {"serve", "--dir", dir, "--bind-addr", "127.0.0.1:0", "--log-level", "loud"},
		"unreadable tls cert": {"serve", "--tls-cert", "/etc/hostname", "--tls-key", "/etc/hostname"},
	} {
		if r := runCLI(t, args...); r.code != exitUsage {
			t.Errorf("%s: %v, want exit 2", name, r)
		}
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
