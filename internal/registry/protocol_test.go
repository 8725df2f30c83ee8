package registry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"google.golang.org/protobuf/proto"

	"github.com/pipelined/pipelined/internal/pulsarlocal"
	pb "github.com/pipelined/pipelined/internal/pulsarpb"
	"github.com/pipelined/pipelined/internal/schemas"
)

// avroSchema is a registry entry holding SensorData.
var avroSchema = &pb.Schema{
	Name:       proto.String("Avro"),
	SchemaData: []byte(schemas.SensorData),
	Type:       pb.Schema_Avro.Enum(),
}

func TestConnectCommand(t *testing.T) {
	for _, tc := range []struct {
		name, token, method string
	}{
		{"no auth", "", ""},
		{"token", "s3cr3t", "token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, nil, avroSchema, nil)
			def, typ, err := Schema(t.Context(), Options{URL: f.url, Token: tc.token}, "sensors")
			if err != nil {
				t.Fatalf("Schema: %v", err)
			}
			if def != schemas.SensorData || typ != "AVRO" {
				t.Fatalf("got %q %s, want SensorData AVRO", def, typ)
			}
			connects := f.received(pb.BaseCommand_CONNECT)
			if len(connects) != 1 {
				t.Fatalf("%d CONNECTs, want 1 (the lookup answer is the same broker)", len(connects))
			}
			c := connects[0].GetConnect()
			if c.GetProtocolVersion() != 20 || !strings.HasPrefix(c.GetClientVersion(), "Pulsar-Go-") {
				t.Fatalf("CONNECT protocol %d client %q, want 20 and Pulsar-Go-...", c.GetProtocolVersion(), c.GetClientVersion())
			}
			if c.GetAuthMethodName() != tc.method || string(c.GetAuthData()) != tc.token || c.ProxyToBrokerUrl != nil {
				t.Fatalf("CONNECT auth %q %q proxy %v, want %q %q none", c.GetAuthMethodName(), c.GetAuthData(), c.ProxyToBrokerUrl, tc.method, tc.token)
			}
			lookups := f.received(pb.BaseCommand_LOOKUP)
			if len(lookups) != 1 || lookups[0].GetLookupTopic().GetTopic() != "persistent://public/default/sensors" {
				t.Fatalf("LOOKUPs %v, want one of persistent://public/default/sensors", lookups)
			}
		})
	}
}

func TestConnectRefused(t *testing.T) {
	f := newFake(t, nil, nil, func(c *fakeConn, cmd *pb.BaseCommand) {
		if cmd.GetType() == pb.BaseCommand_CONNECT && string(cmd.GetConnect().GetAuthData()) != "good" {
			c.send(&pb.BaseCommand{Type: pb.BaseCommand_ERROR.Enum(), Error: &pb.CommandError{
				RequestId: proto.Uint64(0), Error: pb.ServerError_AuthenticationError.Enum(), Message: proto.String("Unable to authenticate"),
			}})
			return
		}
		c.answer(cmd)
	})
	_, _, err := Schema(t.Context(), Options{URL: f.url, Token: "bad"}, "sensors")
	if err == nil || !strings.Contains(err.Error(), "connect to "+f.url+": AuthenticationError: Unable to authenticate") {
		t.Fatalf("error %v, want the broker's AuthenticationError naming %s", err, f.url)
	}
}

// The broker may PING and challenge the authentication at any time; the answer arrives only
// once the client has answered both, after a stray answer to another request.
func TestPingAndAuthChallengeWhileWaiting(t *testing.T) {
	var schemaReq uint64 // of the connection's one GET_SCHEMA; one goroutine handles it
	f := newFake(t, nil, nil, func(c *fakeConn, cmd *pb.BaseCommand) {
		switch cmd.GetType() {
		case pb.BaseCommand_GET_SCHEMA:
			schemaReq = cmd.GetGetSchema().GetRequestId()
			c.send(&pb.BaseCommand{Type: pb.BaseCommand_PING.Enum(), Ping: &pb.CommandPing{}})
			c.send(&pb.BaseCommand{Type: pb.BaseCommand_AUTH_CHALLENGE.Enum(), AuthChallenge: &pb.CommandAuthChallenge{
				Challenge: &pb.AuthData{AuthMethodName: proto.String("token"), AuthData: []byte("refresh")},
			}})
		case pb.BaseCommand_AUTH_RESPONSE:
			r := cmd.GetAuthResponse().GetResponse()
			pongs := len(c.f.received(pb.BaseCommand_PONG))
			if pongs != 1 || r.GetAuthMethodName() != "token" || string(r.GetAuthData()) != "s3cr3t" {
				c.f.t.Errorf("AUTH_RESPONSE %v after %d PONGs, want the token after one PONG", r, pongs)
				return
			}
			stray := &pb.CommandGetSchemaResponse{RequestId: proto.Uint64(schemaReq + 100), Schema: &pb.Schema{
				Name: proto.String("stray"), SchemaData: []byte("{}"), Type: pb.Schema_Json.Enum(),
			}}
			c.send(&pb.BaseCommand{Type: pb.BaseCommand_GET_SCHEMA_RESPONSE.Enum(), GetSchemaResponse: stray})
			c.send(&pb.BaseCommand{Type: pb.BaseCommand_GET_SCHEMA_RESPONSE.Enum(), GetSchemaResponse: &pb.CommandGetSchemaResponse{
				RequestId: proto.Uint64(schemaReq), Schema: avroSchema,
			}})
		default:
			c.answer(cmd)
		}
	})
	def, typ, err := Schema(t.Context(), Options{URL: f.url, Token: "s3cr3t", Timeout: 10 * time.Second}, "sensors")
	if err != nil || def != schemas.SensorData || typ != "AVRO" {
		t.Fatalf("got %q %q %v, want SensorData AVRO", def, typ, err)
	}
}

// A lookup redirected by one broker to another, which sends the client on to the owner: a
// pulsarlocal broker holding the schema.
func TestRedirectIsFollowed(t *testing.T) {
	owner := pulsarlocal.NewTest(t, pulsarlocal.Config{})
	avro := pulsar.NewAvroSchema(schemas.SensorData, nil)
	produceWithSchema(t, owner, "sensors", avro)

	middle := newFake(t, nil, nil, func(c *fakeConn, cmd *pb.BaseCommand) {
		if cmd.GetType() == pb.BaseCommand_LOOKUP {
			if !cmd.GetLookupTopic().GetAuthoritative() {
				c.f.t.Errorf("redirected LOOKUP not authoritative")
			}
			c.send(lookupAnswer(cmd, pb.CommandLookupTopicResponse_Connect, owner.URL(), false))
			return
		}
		c.answer(cmd)
	})
	front := newFake(t, nil, nil, func(c *fakeConn, cmd *pb.BaseCommand) {
		if cmd.GetType() == pb.BaseCommand_LOOKUP {
			c.send(lookupAnswer(cmd, pb.CommandLookupTopicResponse_Redirect, middle.url, false))
			return
		}
		c.answer(cmd)
	})
	def, _, err := Schema(t.Context(), Options{URL: front.url, Timeout: 10 * time.Second}, "sensors")
	if err != nil {
		t.Fatalf("Schema: %v", err)
	}
	if def != avro.GetSchemaInfo().Schema {
		t.Fatalf("definition %s, want %s", def, avro.GetSchemaInfo().Schema)
	}
	for _, f := range []*fake{front, middle} {
		if n := len(f.received(pb.BaseCommand_LOOKUP)); n != 1 {
			t.Fatalf("%s got %d LOOKUPs, want 1", f.url, n)
		}
		if n := len(f.received(pb.BaseCommand_GET_SCHEMA)); n != 0 {
			t.Fatalf("%s got %d GET_SCHEMAs, want them at the owner only", f.url, n)
		}
	}
}

func TestProxyThroughServiceURL(t *testing.T) {
	const broker = "broker-7.pulsar.invalid:6650"
	proxy := newFake(t, nil, avroSchema, func(c *fakeConn, cmd *pb.BaseCommand) {
		switch cmd.GetType() {
		case pb.BaseCommand_LOOKUP:
			c.send(lookupAnswer(cmd, pb.CommandLookupTopicResponse_Connect, "pulsar://"+broker, true))
		case pb.BaseCommand_GET_SCHEMA:
			if c.proxyTo != broker {
				c.send(&pb.BaseCommand{Type: pb.BaseCommand_ERROR.Enum(), Error: &pb.CommandError{
					RequestId: proto.Uint64(cmd.GetGetSchema().GetRequestId()),
					Error:     pb.ServerError_ServiceNotReady.Enum(),
					Message:   proto.String("connection proxied to " + c.proxyTo),
				}})
				return
			}
			c.answer(cmd)
		default:
			c.answer(cmd)
		}
	})
	def, _, err := Schema(t.Context(), Options{URL: proxy.url, Timeout: 10 * time.Second}, "sensors")
	if err != nil || def != schemas.SensorData {
		t.Fatalf("got %q %v, want SensorData", def, err)
	}
	connects := proxy.received(pb.BaseCommand_CONNECT)
	if len(connects) != 2 || connects[0].GetConnect().ProxyToBrokerUrl != nil || connects[1].GetConnect().GetProxyToBrokerUrl() != broker {
		t.Fatalf("CONNECTs %v, want a plain one and one proxied to %s", connects, broker)
	}
}

func TestRedirectLoopIsBounded(t *testing.T) {
	f := newFake(t, nil, nil, func(c *fakeConn, cmd *pb.BaseCommand) {
		if cmd.GetType() == pb.BaseCommand_LOOKUP {
			c.send(lookupAnswer(cmd, pb.CommandLookupTopicResponse_Redirect, c.f.url, false))
			return
		}
		c.answer(cmd)
	})
	_, _, err := Schema(t.Context(), Options{URL: f.url, Timeout: 10 * time.Second}, "sensors")
	if err == nil || !strings.Contains(err.Error(), "more than 20 redirects") {
		t.Fatalf("error %v, want too many redirects", err)
	}
	if n := len(f.received(pb.BaseCommand_LOOKUP)); n != 21 {
		t.Fatalf("%d LOOKUPs, want 21", n)
	}
}

func TestServerErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(c *fakeConn, cmd *pb.BaseCommand) bool
		want   string
	}{
		{"lookup failed", func(c *fakeConn, cmd *pb.BaseCommand) bool {
			if cmd.GetType() != pb.BaseCommand_LOOKUP {
				return false
			}
			r := lookupAnswer(cmd, pb.CommandLookupTopicResponse_Failed, "", false)
			r.LookupTopicResponse.Error = pb.ServerError_AuthorizationError.Enum()
			r.LookupTopicResponse.Message = proto.String("not allowed")
			c.send(r)
			return true
		}, "LOOKUP on pulsar://ADDR: AuthorizationError: not allowed"},
		{"lookup without URL", func(c *fakeConn, cmd *pb.BaseCommand) bool {
			if cmd.GetType() != pb.BaseCommand_LOOKUP {
				return false
			}
			c.send(lookupAnswer(cmd, pb.CommandLookupTopicResponse_Connect, "", false))
			return true
		}, "LOOKUP on pulsar://ADDR: answer without broker_service_url"},
		{"ERROR for GET_SCHEMA", func(c *fakeConn, cmd *pb.BaseCommand) bool {
			if cmd.GetType() != pb.BaseCommand_GET_SCHEMA {
				return false
			}
			c.send(&pb.BaseCommand{Type: pb.BaseCommand_ERROR.Enum(), Error: &pb.CommandError{
				RequestId: proto.Uint64(cmd.GetGetSchema().GetRequestId()),
				Error:     pb.ServerError_ServiceNotReady.Enum(),
				Message:   proto.String("bundle unloading"),
			}})
			return true
		}, "GET_SCHEMA on pulsar://ADDR: ServiceNotReady: bundle unloading"},
		{"schema error code", func(c *fakeConn, cmd *pb.BaseCommand) bool {
			if cmd.GetType() != pb.BaseCommand_GET_SCHEMA {
				return false
			}
			c.send(&pb.BaseCommand{Type: pb.BaseCommand_GET_SCHEMA_RESPONSE.Enum(), GetSchemaResponse: &pb.CommandGetSchemaResponse{
				RequestId:    proto.Uint64(cmd.GetGetSchema().GetRequestId()),
				ErrorCode:    pb.ServerError_MetadataError.Enum(),
				ErrorMessage: proto.String("zookeeper away"),
			}})
			return true
		}, "GET_SCHEMA on pulsar://ADDR: MetadataError: zookeeper away"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, nil, avroSchema, func(c *fakeConn, cmd *pb.BaseCommand) {
				if !tc.answer(c, cmd) {
					c.answer(cmd)
				}
			})
			_, _, err := Schema(t.Context(), Options{URL: f.url, Timeout: 10 * time.Second}, "tenant/ns/sensors")
			want := `schema of topic "persistent://tenant/ns/sensors" from ` + f.url + ": " +
				strings.ReplaceAll(tc.want, "pulsar://ADDR", f.url)
			if err == nil || err.Error() != want {
				t.Fatalf("error\n%v\nwant\n%s", err, want)
			}
		})
	}
}

// A lookup that does not find the topic (as for a partitioned topic's base name on some
// brokers) falls back to asking the same broker for the schema.
func TestLookupTopicNotFoundAsksAnyway(t *testing.T) {
	for _, tc := range []struct {
		name   string
		schema *pb.Schema
	}{
		{"schema", avroSchema},
		{"no schema", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, nil, tc.schema, func(c *fakeConn, cmd *pb.BaseCommand) {
				if cmd.GetType() == pb.BaseCommand_LOOKUP {
					r := lookupAnswer(cmd, pb.CommandLookupTopicResponse_Failed, "", false)
					r.LookupTopicResponse.Error = pb.ServerError_TopicNotFound.Enum()
					c.send(r)
					return
				}
				c.answer(cmd)
			})
			def, _, err := Schema(t.Context(), Options{URL: f.url, Timeout: 10 * time.Second}, "sensors")
			if tc.schema == nil {
				if !errors.Is(err, ErrNoSchema) {
					t.Fatalf("error %v, want ErrNoSchema", err)
				}
				return
			}
			if err != nil || def != schemas.SensorData {
				t.Fatalf("got %q %v, want SensorData", def, err)
			}
		})
	}
}

// A broker that answers CONNECT and then nothing.
func TestSilentLookupTimesOut(t *testing.T) {
	f := newFake(t, nil, nil, func(c *fakeConn, cmd *pb.BaseCommand) {
		if cmd.GetType() == pb.BaseCommand_CONNECT {
			c.answer(cmd)
		}
	})
	_, _, err := Schema(t.Context(), Options{URL: f.url, Timeout: 300 * time.Millisecond}, "sensors")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for LOOKUP_RESPONSE from "+f.url) {
		t.Fatalf("error %v, want a deadline waiting for LOOKUP_RESPONSE", err)
	}
}
