package main

import (
	"errors"
	"time"

	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/sipclient"
)

// Result is the JSON object `imsue register --json` (and `imsue demo
// --json`) prints: the CLI's contract, with the README's exit code table.
// Fields that do not apply are omitted.
type Result struct {
	// Result is "registered" or, on failure, the outcome of the error's
	// class in errorClasses: "interrupted", "no_answer", "rejected",
	// "mac_failure", "sync_failure", "sec_agree_failure", "ipsec_failure",
	// "bad_challenge", "terminated", "error".
	Result         string          `json:"result"`
	IMPI           string          `json:"impi,omitempty"`
	IMPU           string          `json:"impu,omitempty"`
	AssociatedURIs []string        `json:"associated_uris,omitempty"`
	ServiceRoute   []string        `json:"service_route,omitempty"`
	Expires        *int64          `json:"expires,omitempty"` // seconds granted
	Security       *SecurityResult `json:"security,omitempty"`
	// Unauthenticated: registered without any challenge (only with
	// --allow-unauthenticated): the network was not authenticated.
	Unauthenticated bool `json:"unauthenticated,omitempty"`
	// PubGRUU and TempGRUU are the GRUUs the registrar assigned (RFC 5627).
	PubGRUU        string             `json:"pub_gruu,omitempty"`
	TempGRUU       string             `json:"temp_gruu,omitempty"`
	TimingsMS      map[string]float64 `json:"timings_ms,omitempty"`
	Deregistration *DeregResult       `json:"deregistration,omitempty"`
	Status         int                `json:"status,omitempty"` // the rejecting response's code
	Reason         string             `json:"reason,omitempty"`
	RetryAfter     int64              `json:"retry_after,omitempty"` // seconds, the rejection's Retry-After
	Warning        string             `json:"warning,omitempty"`     // the rejection's Warning
	Challenges     []string           `json:"challenges,omitempty"`  // both 401s, when the protected REGISTER was challenged again twice
	Error          string             `json:"error,omitempty"`
	ExitCode       int                `json:"exit_code,omitempty"`
}

// SecurityResult is the SA set without keys.
type SecurityResult struct {
	Alg    ipsec.Auth `json:"alg"`
	EAlg   ipsec.Enc  `json:"ealg"`
	Mode   ipsec.Mode `json:"mode"`
	SPIuc  uint32     `json:"spi_uc"`
	SPIus  uint32     `json:"spi_us"`
	SPIpc  uint32     `json:"spi_pc"`
	SPIps  uint32     `json:"spi_ps"`
	PortUC uint16     `json:"port_uc"`
	PortUS uint16     `json:"port_us"`
	PortPC uint16     `json:"port_pc"`
	PortPS uint16     `json:"port_ps"`
}

// DeregResult reports the de-registration.
type DeregResult struct {
	Confirmed bool   `json:"confirmed"`
	Reason    string `json:"reason,omitempty"` // why not confirmed
}

// NewResult describes a registration (reg may be nil) and the error that
// ended the procedure (nil on success).
func NewResult(reg *sipclient.Registration, err error) Result {
	r := Result{Result: Outcome(err)}
	if reg != nil {
		r.IMPI, r.IMPU = reg.IMPI, reg.IMPU
		r.AssociatedURIs, r.ServiceRoute = reg.AssociatedURIs, reg.ServiceRoute
		e := int64(reg.Expires / time.Second)
		r.Expires = &e
		r.Unauthenticated = reg.Unauthenticated
		r.PubGRUU, r.TempGRUU = reg.PubGRUU, reg.TempGRUU
		if s := reg.Security; s != nil {
			mode := s.Mode
			if mode == "" {
				mode = ipsec.ModeTransport
			}
			ealg := s.EAlg
			if ealg == "" {
				ealg = ipsec.EncNull
			}
			r.Security = &SecurityResult{Alg: s.Alg, EAlg: ealg, Mode: mode,
				SPIuc: s.SPIuc, SPIus: s.SPIus, SPIpc: s.SPIpc, SPIps: s.SPIps,
				PortUC: s.PortUC, PortUS: s.PortUS, PortPC: s.PortPC, PortPS: s.PortPS}
		}
		t := reg.Timings
		r.TimingsMS = map[string]float64{"register": ms(t.Total)}
		if t.Challenge > 0 {
			r.TimingsMS["challenge"] = ms(t.Challenge)
			r.TimingsMS["aka"] = ms(t.AKA)
			r.TimingsMS["sa_install"] = ms(t.SAInstall)
			r.TimingsMS["protected_register"] = ms(t.Protected)
		}
	}
	var rej *sipclient.RejectedError
	if errors.As(err, &rej) {
		r.Status, r.Reason, r.Warning = rej.Status, rej.Reason, rej.Warning
		r.RetryAfter = int64(rej.RetryAfter / time.Second)
		r.Challenges = rej.Challenges
	}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}
