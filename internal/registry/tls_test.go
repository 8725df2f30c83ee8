package registry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
	"github.com/pipelined/pipelined/internal/schemas"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client certificate, written
// as PEM files.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	pool                                                 *x509.CertPool
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatalf("write %s: %v", p, err)
		}
		return p
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatalf("key: %v", err)
		}
		return k
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("CA: %v", err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		k := key()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatalf("%s key: %v", name, err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	p := testPKI{caFile: write("ca.pem", "CERTIFICATE", caDER), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth, nil)
	return p
}

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	serverCert, err := tls.LoadX509KeyPair(pki.serverCert, pki.serverKey)
	if err != nil {
		t.Fatalf("server certificate: %v", err)
	}
	f := newFake(t, &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pki.pool,
		MinVersion:   tls.VersionTLS12,
	}, avroSchema, nil)

	t.Run("mTLS", func(t *testing.T) {
		cfg, err := LoadTLS(pki.caFile, pki.clientCert, pki.clientKey, false)
		if err != nil {
			t.Fatalf("LoadTLS: %v", err)
		}
		def, typ, err := Schema(t.Context(), Options{URL: f.url, TLSConfig: cfg, Timeout: 10 * time.Second}, "sensors")
		if err != nil || def != schemas.SensorData || typ != "AVRO" {
			t.Fatalf("got %q %q %v, want SensorData AVRO", def, typ, err)
		}
		connects := f.received(pb.BaseCommand_CONNECT)
		if m := connects[len(connects)-1].GetConnect().GetAuthMethodName(); m != "tls" {
			t.Fatalf("auth method %q, want tls with a client certificate", m)
		}
	})
	t.Run("token over TLS", func(t *testing.T) {
		cfg, err := LoadTLS(pki.caFile, "", "", false)
		if err != nil {
			t.Fatalf("LoadTLS: %v", err)
		}
		if _, _, err := Schema(t.Context(), Options{URL: f.url, TLSConfig: cfg, Token: "t0k"}, "sensors"); err != nil {
			t.Fatalf("Schema: %v", err)
		}
		connects := f.received(pb.BaseCommand_CONNECT)
		if c := connects[len(connects)-1].GetConnect(); c.GetAuthMethodName() != "token" || string(c.GetAuthData()) != "t0k" {
			t.Fatalf("auth %q %q, want the token", c.GetAuthMethodName(), c.GetAuthData())
		}
	})
	t.Run("unknown CA", func(t *testing.T) {
		_, _, err := Schema(t.Context(), Options{URL: f.url, Timeout: 10 * time.Second}, "sensors")
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) || !strings.Contains(err.Error(), "dial "+f.url) {
			t.Fatalf("error %v, want an unknown authority dialling %s", err, f.url)
		}
	})
	t.Run("insecure", func(t *testing.T) {
		cfg, err := LoadTLS("", "", "", true)
		if err != nil {
			t.Fatalf("LoadTLS: %v", err)
		}
		if _, _, err := Schema(t.Context(), Options{URL: f.url, TLSConfig: cfg}, "sensors"); err != nil {
			t.Fatalf("Schema: %v", err)
		}
	})
}

func TestLoadTLSErrors(t *testing.T) {
	pki := newTestPKI(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		name                string
		ca, cert, key, want string
	}{
		{"missing CA", missing, "", "", missing},
		{"CA without PEM", pki.clientKey, "", "", "no PEM certificate found"},
		{"cert without key", "", pki.clientCert, "", pki.clientCert},
		{"key of another cert", "", pki.clientCert, pki.serverKey, "private key does not match"},
	} {
		_, err := LoadTLS(tc.ca, tc.cert, tc.key, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}
