package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
)

func configFor(t *testing.T, args ...string) (skiff.Config, error) {
	t.Helper()
	_, cfg, err := serveConfig(flag.NewFlagSet("serve", flag.ContinueOnError), args)
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

// testPKI writes a CA and two certificates signed by it: a node's (DNS
// name n1.peers.test and IP 127.0.0.1, usable as server and client) and
// an application's (app.clients.test).
func testPKI(t *testing.T) (ca, nodeCert, nodeKey, appCert, appKey string) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caParsed, _ := x509.ParseCertificate(caDER)
	ca = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	issue := func(name string, serial int64, ips []net.IP) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			DNSNames: []string{name}, IPAddresses: ips, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caParsed, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(key)
		return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", kb)
	}
	nodeCert, nodeKey = issue("n1.peers.test", 2, []net.IP{net.ParseIP("127.0.0.1")})
	appCert, appKey = issue("app.clients.test", 3, nil)
	return
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serve with mutual TLS, peers by certificate name and a client role by
// certificate name; the client verbs with --cacert, --cert and --key.
func TestServeTLS(t *testing.T) {
	ca, nodeCert, nodeKey, appCert, appKey := testPKI(t)
	if _, err := configFor(t, "--tls-cert", nodeCert, "--tls-key", nodeKey, "--tls-client-auth", "sometimes"); exitCode(err) != exitUsage {
		t.Fatalf("--tls-client-auth sometimes: %v, want a usage error", err)
	}
	cfg, err := configFor(t, "--tls-cert", nodeCert, "--tls-key", nodeKey, "--tls-ca", ca, "--peer-tls-ca", ca)
	if err != nil || cfg.TLS.ClientAuth != tls.RequireAndVerifyClientCert || cfg.TLS.ClientCAs == nil ||
		cfg.PeerTLS == nil || len(cfg.PeerTLS.Certificates) != 1 || cfg.PeerTLS.RootCAs == nil {
		t.Fatalf("TLS config: %+v, %v", cfg, err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	var logs syncBuffer
	go func() {
		done <- Run(ctx, []string{"serve", "--dir", t.TempDir(), "--bind-addr", addr, "--tls-cert", nodeCert, "--tls-key", nodeKey,
			"--tls-ca", ca, "--peer-names", "*.peers.test", "--client-names", "app.clients.test=readwrite"}, io.Discard, &logs)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("serve exited %d:\n%s", code, logs.String())
		}
	})
	t.Setenv("SKIFF_ENDPOINTS", addr)
	t.Setenv("SKIFF_CACERT", ca)
	eventually(t, 20*time.Second, func() error {
		if r := runCLI(t, "put", "k", "v", "--cert", appCert, "--key", appKey, "--timeout", "2s"); r.code != exitOK {
			return fmt.Errorf("%v", r)
		}
		return nil
	})
	mustRun(t, exitOK, "--cert", appCert, "--key", appKey, "get", "k")
	mustRun(t, exitOK, "--cert", appCert, "--key", appKey, "members")
	mustRun(t, exitDenied, "--cert", appCert, "--key", appKey, "transfer-leader") // readwrite is no admin
	mustRun(t, exitUsage, "get", "k", "--cert", appCert)                          // a certificate without its key
	// Without a client certificate the handshake fails: the node is
	// unavailable to this client.
	mustRun(t, exitUnavailable, "get", "k", "--timeout", "2s")
}
