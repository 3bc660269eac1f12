package upnp

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"

	"gateway/upnp/soap"
)

// serveSOAP answers a control request (UDA 2.0 §3.2).
func (s *Server) serveSOAP(w http.ResponseWriter, r *http.Request, client netip.Addr) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.count("soap_body_too_large")
		http.Error(w, "body", http.StatusRequestEntityTooLarge)
		return
	}
	a, err := soap.ParseAction(body)
	if err != nil {
		s.count("soap_malformed")
		s.fault(w, &fault{code: ErrInvalidAction, reason: "malformed", err: err}, client)
		return
	}
	if h := r.Header.Get("SOAPACTION"); h != "" {
		if st, name, err := soap.ParseSOAPAction(h); err != nil || st != a.ServiceType || name != a.Name {
			s.count("soap_action_mismatch")
			s.fault(w, failf(ErrInvalidAction, "action_mismatch", "SOAPACTION %q does not match the body's %s#%s", h, a.ServiceType, a.Name), client)
			return
		}
	}
	out, err := s.core.Invoke(client, r.URL.Path, a)
	if err != nil {
		s.fault(w, err, client)
		return
	}
	s.count("soap_ok")
	resp, err := soap.Action{ServiceType: a.ServiceType, Name: a.Name + "Response", Args: out}.Append(nil)
	if err != nil {
		s.fault(w, failf(ErrActionFailed, "marshal", "%v", err), client)
		return
	}
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.Header().Set("EXT", "")
	w.Header().Set("Content-Length", strconv.Itoa(len(resp)))
	w.Write(resp)
}

func (s *Server) fault(w http.ResponseWriter, err error, client netip.Addr) {
	var f *fault
	if !errors.As(err, &f) {
		f = &fault{code: ErrActionFailed, reason: "failed", err: err}
	}
	s.count("fault_" + f.reason)
	level := slog.LevelDebug
	if f.code == ErrNotAuthorized || f.reason == "rules" || f.reason == "host_limit" || f.reason == "table_full" {
		level = slog.LevelInfo // a refusal by the policy: logged with its reason
	}
	s.log.Log(nil, level, "upnp action refused", slog.String("client", client.String()), slog.Int("code", f.code), slog.String("reason", f.reason), slog.Any("err", f.err))
	b, _ := f.SOAP().Append(nil)
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusInternalServerError)
	w.Write(b)
}
