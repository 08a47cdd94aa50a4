// Command ptb runs PostTrainBench jobs: an agent post-trains a base model in
// a sandbox, then ptb audits and evaluates what it left. See README.md.
package main

import (
	"os"

	"github.com/ptb-dev/ptb/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
