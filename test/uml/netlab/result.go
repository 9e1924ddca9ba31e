//go:build linux

package netlab

// RegisterResult is the part of what `imsue register --json` prints that
// the kernel and interop tests read. It is written from the README's JSON
// contract, not taken from the CLI's own type, so that a renamed field
// fails these tests. (Plain strings: package ipsec's own tests import
// netlab.)
type RegisterResult struct {
	Result   string `json:"result"`
	Security *struct {
		Alg    string `json:"alg"`
		EAlg   string `json:"ealg"`
		SPIuc  uint32 `json:"spi_uc"`
		SPIus  uint32 `json:"spi_us"`
		SPIpc  uint32 `json:"spi_pc"`
		SPIps  uint32 `json:"spi_ps"`
		PortUC uint16 `json:"port_uc"`
		PortUS uint16 `json:"port_us"`
		PortPC uint16 `json:"port_pc"`
		PortPS uint16 `json:"port_ps"`
	} `json:"security"`
	TimingsMS      map[string]float64 `json:"timings_ms"`
	Deregistration *struct {
		Confirmed bool   `json:"confirmed"`
		Reason    string `json:"reason"`
	} `json:"deregistration"`
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error"`
}
