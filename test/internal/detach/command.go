package detach

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ironlb/ironlb/test/framework"
)

// Command is a command-line tool built on this package: its up, down,
// status and serve subcommands.
type Command struct {
	// Name is the command's name, for errors: "controlplane".
	Name string
	// Server says what the command runs, for messages: "control plane".
	Server string
	// StateDir is the state directory, relative to the repository root,
	// unless -dir says otherwise: ".cache/cluster".
	StateDir string
	// Usage is the help text.
	Usage string
	// The subcommands. Each adds its own flags to fs, which has -dir, and
	// calls fs.Server to parse them.
	Up, Down, Status, Serve func(fs *Flags) error
}

// Main runs the subcommand named by os.Args[1] and exits: with status 2 and
// the usage for an unknown one, with status 1 and the error, prefixed with
// the command's and the subcommand's names, if it fails.
func (c Command) Main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, c.Usage)
		os.Exit(2)
	}
	subcommand := os.Args[1]
	var run func(fs *Flags) error
	switch subcommand {
	case "up":
		run = c.Up
	case "down":
		run = c.Down
	case "status":
		run = c.Status
	case "serve":
		run = c.Serve
	case "-h", "-help", "--help", "help":
		fmt.Fprint(os.Stderr, c.Usage)
		return
	default:
		fmt.Fprint(os.Stderr, c.Usage)
		os.Exit(2)
	}
	fs := &Flags{FlagSet: flag.NewFlagSet(subcommand, flag.ExitOnError), cmd: c, args: os.Args[2:]}
	fs.StringVar(&fs.dir, "dir", "", fmt.Sprintf("state directory (default <repo>/%s)", c.StateDir))
	if err := run(fs); err != nil {
		fs.fail(err)
	}
}

// Flags are the flags of the subcommand being run.
type Flags struct {
	*flag.FlagSet
	cmd  Command
	args []string
	dir  string
}

// Server parses the subcommand's arguments and returns the server whose
// state directory they name. A bad flag, or a state directory that cannot
// be found, ends the program.
func (f *Flags) Server() Server {
	_ = f.Parse(f.args) // ExitOnError
	dir := f.dir
	if dir == "" {
		root, err := framework.RepoRoot()
		if err != nil {
			f.fail(err)
		}
		dir = filepath.Join(root, f.cmd.StateDir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		f.fail(err)
	}
	return Server{Name: f.cmd.Server, Dir: abs}
}

func (f *Flags) fail(err error) {
	fmt.Fprintf(os.Stderr, "%s %s: %v\n", f.cmd.Name, f.Name(), err)
	os.Exit(1)
}
