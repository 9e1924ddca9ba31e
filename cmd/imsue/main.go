// Command imsue is a UE-side IMS client: it registers a subscriber to an IMS
// core the way TS 33.203 and TS 24.229 describe it (Digest AKA, sec-agree,
// ESP to the P-CSCF), and carries the lab tools around that job.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
