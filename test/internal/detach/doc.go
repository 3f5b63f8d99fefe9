// Package detach keeps a command's long-running server going in the
// background, detached from the shell, for hands-on work (make cluster-up,
// make lab-up). A command built on it has four subcommands:
//
//	up      start "<command> serve" in a new session and wait until it is ready
//	status  say whether it runs and is ready
//	down    stop it: SIGTERM, SIGKILL after a timeout
//	serve   run the server in the foreground until a signal (what up starts)
//
// The subcommands meet in a state directory, which up wipes first so every
// run starts afresh:
//
//	serve.pid  the serve process, written when it starts and removed when it exits
//	ready      written once the server is usable, removed first on the way out
//	serve.log  serve's output
//
// serve runs in a session of its own, so it has no controlling terminal, is
// not in the shell's job, and outlives the up command and a ^C typed there.
//
// A command describes itself as a [Command] and leaves the subcommand
// plumbing (dispatch, the -dir flag, errors) to [Command.Main]; its
// subcommands call [Server.Up], [Server.Check], [Server.Down] and
// [Server.Serve]. The servers are Kubernetes control planes (with a network
// lab around one of them), so status ends by asking the apiserver
// ([ProbeAPIServer]).
package detach
