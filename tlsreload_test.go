package skiff_test

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
)

// writePEM writes cert's chain and key to certFile and keyFile.
func writePEM(t *testing.T, cert tls.Certificate, certFile, keyFile string) {
	t.Helper()
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if certFile != "" {
		writeFile(t, certFile, chain)
	}
	if keyFile != "" {
		writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: key}))
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeCAs(t *testing.T, path string, cas ...*testCA) {
	t.Helper()
	var b []byte
	for _, ca := range cas {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	}
	writeFile(t, path, b)
}

func serial(c tls.Certificate) *big.Int {
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	return leaf.SerialNumber
}

// presented returns the serial number of the certificate a node at addr
// presents to a new connection.
func presented(t *testing.T, addr string, client tls.Certificate, pool *x509.CertPool) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

// A node serving certificates from files presents a rotated certificate
// (a new key from the same CA) to new connections without a restart, and
// a client of the same kind follows a new CA.
func TestTLSReloadWithoutRestart(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "node.pem"), filepath.Join(dir, "node-key.pem"), filepath.Join(dir, "ca.pem")
	first := ca.issue(t, "node")
	writePEM(t, first, certFile, keyFile)
	writeCAs(t, caFile, ca)

	cfg := testConfig(t.TempDir())
	var err error
	if cfg.TLS, err = skiff.ReloadingTLS(skiff.TLSFiles{CertFile: certFile, KeyFile: keyFile, CAFile: caFile}); err != nil {
		t.Fatal(err)
	}
	n := openNode(t, cfg)
	app := ca.issue(t, "app")
	if got := presented(t, n.Addr(), app, ca.pool); got.Cmp(serial(first)) != 0 {
		t.Fatalf("node presents serial %v, want the first certificate's %v", got, serial(first))
	}
	appDir := t.TempDir()
	appCert, appKey, appCA := filepath.Join(appDir, "app.pem"), filepath.Join(appDir, "app-key.pem"), filepath.Join(appDir, "ca.pem")
	writePEM(t, app, appCert, appKey)
	writeCAs(t, appCA, ca)
	clientTLS, err := skiff.ReloadingTLS(skiff.TLSFiles{CertFile: appCert, KeyFile: appKey, CAFile: appCA})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	cl, err := skiff.Dial(ctx, []string{n.Addr()}, skiff.WithTLS(clientTLS))
	if err != nil {
		t.Fatalf("Dial with a reloading client config: %v", err)
	}
	defer cl.Close()
	if _, err := cl.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}

	// Half a rotation (the certificate written, not yet its key) keeps
	// the old pair; the key completes it.
	second := ca.issue(t, "node")
	writePEM(t, second, certFile, "")
	if got := presented(t, n.Addr(), app, ca.pool); got.Cmp(serial(first)) != 0 {
		t.Fatalf("with a certificate and a key that do not match, node presents %v, want the first %v", got, serial(first))
	}
	writePEM(t, second, "", keyFile)
	if got := presented(t, n.Addr(), app, ca.pool); got.Cmp(serial(second)) != 0 {
		t.Fatalf("after rotation, node presents %v, want the second certificate's %v", got, serial(second))
	}
	if _, err := cl.Put(ctx, "k", []byte("after rotation")); err != nil {
		t.Fatalf("Put on the connection made before the rotation: %v", err)
	}

	// A new CA: the node's certificate comes from it, the node trusts
	// both for its clients; the client follows once its CA file names it.
	ca2 := newTestCA(t)
	writeCAs(t, caFile, ca, ca2)
	writePEM(t, ca2.issue(t, "node"), certFile, keyFile)
	_, err = skiff.Dial(ctx, []string{n.Addr()}, skiff.WithTLS(clientTLS), skiff.WithDialTimeout(time.Second))
	if !errors.Is(err, skiff.ErrUnavailable) || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("Dial trusting only the old CA = %v, want ErrUnavailable naming TLS", err)
	}
	writeCAs(t, appCA, ca, ca2)
	cl2, err := skiff.Dial(ctx, []string{n.Addr()}, skiff.WithTLS(clientTLS))
	if err != nil {
		t.Fatalf("Dial after the client's CA file was updated: %v", err)
	}
	defer cl2.Close()
	if _, err := cl2.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
}

// A plaintext client of a TLS node is told that TLS failed, not merely
// that the node is unreachable.
func TestPlaintextClientOfTLSNode(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "node.pem"), filepath.Join(dir, "node-key.pem")
	writePEM(t, ca.issue(t, "node"), certFile, keyFile)
	cfg := testConfig(t.TempDir())
	var err error
	if cfg.TLS, err = skiff.ReloadingTLS(skiff.TLSFiles{CertFile: certFile, KeyFile: keyFile}); err != nil {
		t.Fatal(err)
	}
	n := openNode(t, cfg)
	_, err = skiff.Dial(testCtx(t), []string{n.Addr()}, skiff.WithDialTimeout(2*time.Second))
	if !errors.Is(err, skiff.ErrUnavailable) || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("plaintext Dial of a TLS node = %v, want ErrUnavailable naming TLS", err)
	}
}

func TestReloadingTLSRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	writeFile(t, bad, []byte("not PEM"))
	for name, f := range map[string]skiff.TLSFiles{
		"missing files":     {CertFile: filepath.Join(dir, "none.pem"), KeyFile: filepath.Join(dir, "none-key.pem")},
		"certificate alone": {CertFile: bad},
		"not PEM":           {CertFile: bad, KeyFile: bad},
		"CA not PEM":        {CAFile: bad},
	} {
		if _, err := skiff.ReloadingTLS(f); err == nil {
			t.Errorf("ReloadingTLS with %s succeeded, want an error", name)
		}
	}
}
