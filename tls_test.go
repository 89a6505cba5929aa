package skiff_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	raftpb "github.com/Jille/raft-grpc-transport/proto"
	"github.com/skiffkv/skiff"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
)

// testCA issues certificates for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "skiff test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a certificate for cn and dnsNames, valid for 127.0.0.1,
// for servers and clients alike.
func (ca *testCA) issue(t *testing.T, cn string, dnsNames ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: dnsNames,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serverTLS is a node's TLS config: its certificate, client certificates
// required and verified against the CA.
func (ca *testCA) serverTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.pool, RootCAs: ca.pool,
		ClientAuth: tls.RequireAndVerifyClientCert}
}

func (ca *testCA) clientTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.pool}
}

// With mutual TLS, any certificate the CA issued used to make its holder
// a peer and an admin, an application's client certificate included.
// Now peers are the certificates PeerNames lists, and clients get the role
// ClientNames gives their certificate.
func TestPeerNamesWithMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	nodes, _ := staticCluster(t, 3, func(i int, cfg *skiff.Config) {
		cfg.TLS = ca.serverTLS(ca.issue(t, "", fmt.Sprintf("n%d.peers.test", i)))
		cfg.PeerNames = []string{"*.peers.test"}
		cfg.ClientNames = map[string]skiff.Role{"app.clients.test": skiff.RoleReadWrite}
	})
	ctx := testCtx(t)
	if _, err := nodes[0].WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if _, err := n.Put(ctx, "from/"+n.ID(), []byte("x")); err != nil {
			t.Fatalf("Put on %s: %v", n.ID(), err)
		}
	}
	addrs := []string{nodes[0].Addr(), nodes[1].Addr(), nodes[2].Addr()}

	app := ca.issue(t, "app.clients.test")
	cl, err := skiff.Dial(ctx, addrs, skiff.WithTLS(ca.clientTLS(app)))
	if err != nil {
		t.Fatalf("Dial with the app's certificate: %v", err)
	}
	defer cl.Close()
	if _, err := cl.Put(ctx, "app/k", []byte("v")); err != nil {
		t.Fatalf("app Put: %v", err)
	}
	if err := cl.AddNonvoter(ctx, "bogus", "192.0.2.1:7400"); !errors.Is(err, skiff.ErrPermissionDenied) {
		t.Fatalf("app AddNonvoter: err = %v, want ErrPermissionDenied", err)
	}

	// The app's certificate does not make a peer.
	cc, err := grpc.NewClient("passthrough:///"+nodes[0].Addr(),
		grpc.WithTransportCredentials(credentials.NewTLS(ca.clientTLS(app))),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	err = cc.Invoke(ctx, "/RaftTransport/TimeoutNow", &raftpb.TimeoutNowRequest{RpcHeader: header}, new(rawMsg))
	wantCode(t, "TimeoutNow with a client certificate", err, codes.PermissionDenied)

	// Another certificate from the same CA gets nothing.
	stranger := ca.issue(t, "stranger.clients.test", "n9.peers.example")
	if _, err := skiff.Dial(ctx, addrs, skiff.WithTLS(ca.clientTLS(stranger))); !errors.Is(err, skiff.ErrPermissionDenied) {
		t.Fatalf("Dial with an unlisted certificate: err = %v, want ErrPermissionDenied", err)
	}

	// A client that does not speak TLS is told so, not just that the
	// node is unreachable.
	_, err = skiff.Dial(ctx, addrs, skiff.WithDialTimeout(2*time.Second))
	if !errors.Is(err, skiff.ErrUnavailable) || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("Dial without TLS: err = %v, want ErrUnavailable naming TLS", err)
	}
	t.Logf("Dial without TLS: %v", err)
	// Nor is a client that does not trust the node's certificate.
	_, err = skiff.Dial(ctx, addrs, skiff.WithDialTimeout(2*time.Second), skiff.WithTLS(&tls.Config{Certificates: []tls.Certificate{app}}))
	if !errors.Is(err, skiff.ErrUnavailable) || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("Dial with an unknown CA: err = %v, want ErrUnavailable naming TLS", err)
	}
	t.Logf("Dial with an unknown CA: %v", err)
}
