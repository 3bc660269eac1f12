package gena

import (
	"net/textproto"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseRequest(t *testing.T) {
	h := func(kv ...string) textproto.MIMEHeader {
		m := textproto.MIMEHeader{}
		for i := 0; i < len(kv); i += 2 {
			m.Set(kv[i], kv[i+1])
		}
		return m
	}
	tests := []struct {
		name   string
		method string
		h      textproto.MIMEHeader
		want   Request
		err    bool
	}{
		{"subscribe", "SUBSCRIBE", h("CALLBACK", "<http://192.168.1.10:4000/ev>", "NT", "upnp:event", "TIMEOUT", "Second-1800"),
			Request{Kind: Subscribe, Callbacks: []string{"http://192.168.1.10:4000/ev"}, Timeout: 1800 * time.Second}, false},
		{"two callbacks", "SUBSCRIBE", h("CALLBACK", "<http://a/1> <http://b/2>", "NT", "upnp:event"),
			Request{Kind: Subscribe, Callbacks: []string{"http://a/1", "http://b/2"}}, false},
		{"renew", "SUBSCRIBE", h("SID", "uuid:abc", "TIMEOUT", "infinite"), Request{Kind: Renew, SID: "uuid:abc", Timeout: Infinite}, false},
		{"unsubscribe", "UNSUBSCRIBE", h("SID", "uuid:abc"), Request{Kind: Unsubscribe, SID: "uuid:abc"}, false},
		{"sid and callback", "SUBSCRIBE", h("SID", "uuid:abc", "CALLBACK", "<http://a/>"), Request{}, true},
		{"bad NT", "SUBSCRIBE", h("CALLBACK", "<http://a/>", "NT", "x"), Request{}, true},
		{"https callback", "SUBSCRIBE", h("CALLBACK", "<https://a/>", "NT", "upnp:event"), Request{}, true},
		{"bad timeout", "SUBSCRIBE", h("SID", "uuid:a", "TIMEOUT", "Second-x"), Request{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.method, tt.h)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestPropertySet(t *testing.T) {
	in := []Property{{"ExternalIPAddress", "203.0.113.2"}, {"PortMappingNumberOfEntries", "3"}, {"X", "a<b&c"}}
	b, err := AppendPropertySet(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePropertySet(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, got); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add("SUBSCRIBE", "<http://192.168.1.10:4000/ev>", "upnp:event", "", "Second-1800", "")
	f.Add("SUBSCRIBE", "", "", "uuid:1", "infinite", "")
	f.Add("UNSUBSCRIBE", "", "", "uuid:1", "", "")
	f.Add("SUBSCRIBE", "<http://a/1><http://b/>", "upnp:event", "", "", "A,B")
	f.Fuzz(func(t *testing.T, method, cb, nt, sid, timeout, sv string) {
		h := textproto.MIMEHeader{}
		for k, v := range map[string]string{"CALLBACK": cb, "NT": nt, "SID": sid, "TIMEOUT": timeout, "STATEVAR": sv} {
			if v != "" {
				h.Set(k, v)
			}
		}
		r, err := ParseRequest(method, h)
		if err != nil {
			return
		}
		m, h2, err := r.Header()
		if err != nil {
			t.Fatalf("accepted request cannot be re-encoded: %v (%+v)", err, r)
		}
		back, err := ParseRequest(m, h2)
		if err != nil {
			t.Fatalf("re-encoded request refused: %v", err)
		}
		if diff := cmp.Diff(r, back); diff != "" {
			t.Fatalf("round trip (-want +got)\n%s", diff)
		}
	})
}

func FuzzParsePropertySet(f *testing.F) {
	b, _ := AppendPropertySet(nil, []Property{{"ExternalIPAddress", "203.0.113.2"}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePropertySet(b)
		if err != nil {
			return
		}
		wire, err := AppendPropertySet(nil, p)
		if err != nil {
			t.Fatalf("accepted set cannot be re-encoded: %v", err)
		}
		back, err := ParsePropertySet(wire)
		if err != nil || !cmp.Equal(p, back) {
			t.Fatalf("round trip: %v %s", err, cmp.Diff(p, back))
		}
	})
}
