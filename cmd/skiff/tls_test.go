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
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority of a test's own.
type testCA struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // its certificate, PEM
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return &testCA{t: t, dir: dir, cert: cert, key: key, file: writePEM(t, dir, "ca.pem", "CERTIFICATE", der)}
}

// issue writes a certificate for the DNS name name and the IP 127.0.0.1,
// usable by servers and clients, and its key; it returns their files.
func (ca *testCA) issue(name string, serial int64) (cert, key string) {
	t := ca.t
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("%s-%d", name, serial)
	return writePEM(t, ca.dir, base+".pem", "CERTIFICATE", der), writePEM(t, ca.dir, base+"-key.pem", "EC PRIVATE KEY", kb)
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testPKI writes a CA and two certificates signed by it: a node's (DNS
// name n1.peers.test) and an application's (app.clients.test).
func testPKI(t *testing.T) (ca, nodeCert, nodeKey, appCert, appKey string) {
	t.Helper()
	c := newTestCA(t, "test CA")
	nodeCert, nodeKey = c.issue("n1.peers.test", 2)
	appCert, appKey = c.issue("app.clients.test", 3)
	return c.file, nodeCert, nodeKey, appCert, appKey
}

// startServe runs serve in-process with args until the test ends, when
// it must exit 0.
func startServe(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	var logs syncBuffer
	go func() { done <- Run(ctx, append([]string{"serve", "--dir", t.TempDir()}, args...), io.Discard, &logs) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("serve exited %d:\n%s", code, logs.String())
		}
	})
}

// serve with mutual TLS, peers by certificate name and a client role by
// certificate name; the client verbs with --cacert, --cert and --key.
func TestServeTLS(t *testing.T) {
	ca, nodeCert, nodeKey, appCert, appKey := testPKI(t)
	if _, err := configFor(t, "--tls-cert", nodeCert, "--tls-key", nodeKey, "--tls-client-auth", "sometimes"); exitCode(err) != exitUsage {
		t.Fatalf("--tls-client-auth sometimes: %v, want a usage error", err)
	}
	cfg, err := configFor(t, "--tls-cert", nodeCert, "--tls-key", nodeKey, "--tls-ca", ca, "--peer-tls-ca", ca)
	if err != nil || cfg.TLS.ClientAuth != tls.RequireAndVerifyClientCert || cfg.TLS.ClientCAs == nil || cfg.TLS.GetCertificate == nil ||
		cfg.PeerTLS == nil || cfg.PeerTLS.GetClientCertificate == nil || cfg.PeerTLS.RootCAs == nil {
		t.Fatalf("TLS config: %+v, %v", cfg, err)
	}
	cfg, err = configFor(t, "--tls-cert", nodeCert, "--tls-key", nodeKey, "--tls-ca", ca, "--tls-client-auth", "verify-if-given")
	if err != nil || cfg.TLS.ClientAuth != tls.VerifyClientCertIfGiven || cfg.PeerTLS != nil {
		t.Fatalf("TLS config with --tls-client-auth verify-if-given: %+v, %v", cfg, err)
	}
	addr := freeAddr(t)
	startServe(t, "--bind-addr", addr, "--tls-cert", nodeCert, "--tls-key", nodeKey,
		"--tls-ca", ca, "--peer-names", "*.peers.test", "--client-names", "app.clients.test=readwrite")
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
	// Without a client certificate, or with one of another CA, the
	// handshake fails: the node is unavailable to this client, and the
	// error says why.
	otherCert, otherKey := newTestCA(t, "another CA").issue("app.clients.test", 4)
	for _, args := range [][]string{{}, {"--cert", otherCert, "--key", otherKey}} {
		r := mustRun(t, exitUnavailable, append(args, "get", "k", "--timeout", "2s")...)
		if want := addr + ": TLS failure: the node refused the client certificate"; !strings.Contains(r.stderr, want) {
			t.Errorf("get %q: %v, want it to say %q", args, r, want)
		}
	}
}

// A plaintext call to a node that serves TLS fails, saying it is a TLS
// failure rather than an unreachable node; so do a TLS call to a
// plaintext node and one that does not trust the node's CA.
func TestTLSMismatch(t *testing.T) {
	ca, nodeCert, nodeKey, _, _ := testPKI(t)
	other := newTestCA(t, "another CA")
	tlsAddr, plainAddr := freeAddr(t), freeAddr(t)
	startServe(t, "--bind-addr", tlsAddr, "--tls-cert", nodeCert, "--tls-key", nodeKey)
	startServe(t, "--bind-addr", plainAddr)
	eventually(t, 20*time.Second, func() error {
		for _, args := range [][]string{{"--endpoints", tlsAddr, "--cacert", ca}, {"--endpoints", plainAddr}} {
			if r := runCLI(t, append(args, "put", "k", "v", "--timeout", "2s")...); r.code != exitOK {
				return fmt.Errorf("%v", r)
			}
		}
		return nil
	})
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"plaintext to TLS", []string{"--endpoints", tlsAddr}, tlsAddr + ": TLS failure: the node serves TLS and this call is plaintext; give --cacert FILE"},
		{"TLS to plaintext", []string{"--endpoints", plainAddr, "--cacert", ca}, plainAddr + ": TLS failure: the node does not serve TLS; drop --cacert"},
		{"untrusted CA", []string{"--endpoints", tlsAddr, "--cacert", other.file}, tlsAddr + ": TLS failure: the node's certificate is not trusted"},
	}
	for _, c := range cases {
		r := runCLI(t, append(c.args, "get", "k", "--timeout", "2s")...)
		if r.code != exitUnavailable || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stderr, "unreachable") {
			t.Errorf("%s: %v, want exit 5 saying %q", c.name, r, c.want)
		}
	}
	// A node that is down is no TLS matter.
	r := runCLI(t, "--endpoints", freeAddr(t), "get", "k", "--timeout", "1s")
	if r.code != exitUnavailable || strings.Contains(r.stderr, "TLS") {
		t.Errorf("a node that is down: %v, want exit 5 not blaming TLS", r)
	}
}

// replaceFile puts a copy of src in place of dst the way a rotation
// does: written aside, then renamed over it.
func replaceFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst+".new", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dst+".new", dst); err != nil {
		t.Fatal(err)
	}
}

// concat writes the contents of files, one after the other, to dst.
func concat(t *testing.T, dst string, files ...string) {
	t.Helper()
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if err := os.WriteFile(dst, all, 0o600); err != nil {
		t.Fatal(err)
	}
}

// servedSerial returns the serial number of the certificate the node at
// addr presents to a new connection.
func servedSerial(t *testing.T, addr string) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// A node's certificate and key rotated on disk are served to the next
// connection, with no restart; client certificates are still required
// and verified after the rotation.
func TestServeCertificateRotation(t *testing.T) {
	first, second := newTestCA(t, "first CA"), newTestCA(t, "second CA")
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "node.pem"), filepath.Join(dir, "node-key.pem"), filepath.Join(dir, "ca.pem")
	cert, key := first.issue("n1.peers.test", 2)
	replaceFile(t, cert, certFile)
	replaceFile(t, key, keyFile)
	concat(t, caFile, first.file, second.file) // the node trusts clients of both CAs
	appCert, appKey := first.issue("app.clients.test", 3)
	addr, ops := freeAddr(t), freeAddr(t)
	startServe(t, "--bind-addr", addr, "--tls-cert", certFile, "--tls-key", keyFile, "--tls-ca", caFile, "--metrics-addr", ops)
	t.Setenv("SKIFF_ENDPOINTS", addr)
	t.Setenv("SKIFF_CERT", appCert)
	t.Setenv("SKIFF_KEY", appKey)
	eventually(t, 20*time.Second, func() error {
		if r := runCLI(t, "put", "k", "v", "--cacert", first.file, "--timeout", "2s"); r.code != exitOK {
			return fmt.Errorf("%v", r)
		}
		return nil
	})
	if s := servedSerial(t, addr); s != 2 {
		t.Fatalf("the node serves serial %d, want 2", s)
	}
	notTrusted := addr + ": TLS failure: the node's certificate is not trusted"
	if r := mustRun(t, exitUnavailable, "get", "k", "--cacert", second.file, "--timeout", "2s"); !strings.Contains(r.stderr, notTrusted) {
		t.Fatalf("before the rotation, a client of the second CA: %v, want %q", r, notTrusted)
	}

	cert, key = second.issue("n1.rotated.test", 7)
	replaceFile(t, cert, certFile)
	replaceFile(t, key, keyFile)
	eventually(t, 20*time.Second, func() error {
		if r := runCLI(t, "get", "k", "--cacert", second.file, "--timeout", "2s"); r.code != exitOK || r.stdout != "v\n" {
			return fmt.Errorf("%v", r)
		}
		return nil
	})
	if s := servedSerial(t, addr); s != 7 {
		t.Fatalf("after the rotation the node serves serial %d, want 7", s)
	}
	if r := mustRun(t, exitUnavailable, "get", "k", "--cacert", first.file, "--timeout", "2s"); !strings.Contains(r.stderr, notTrusted) {
		t.Fatalf("after the rotation, a client of the first CA only: %v, want %q", r, notTrusted)
	}
	t.Setenv("SKIFF_CERT", "")
	t.Setenv("SKIFF_KEY", "")
	if r := mustRun(t, exitUnavailable, "get", "k", "--cacert", second.file, "--timeout", "2s"); !strings.Contains(r.stderr, "refused the client certificate") {
		t.Fatalf("after the rotation, a client without a certificate: %v", r)
	}
	// Profiles are served only with --pprof.
	if code, body := httpGet(t, "http://"+ops+"/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("/debug/pprof/ without --pprof = %d %q, want 404", code, body)
	}
}
