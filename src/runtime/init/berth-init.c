/* berth's init (Docker's --init): PID 1 of a container that runs the
 * command as its child, forwards every signal it gets to it, reaps every
 * orphan the kernel re-parents to it, and exits with the command's code
 * (128+N when a signal N killed it), as tini does. Static, so that it runs
 * in any image; build.rs compiles it and berth bind-mounts it read-only at
 * /sbin/docker-init. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int first = 1;
    if (first < argc && strcmp(argv[first], "--") == 0)
        first++;
    if (first >= argc) {
        fprintf(stderr, "docker-init: no command given: docker-init -- COMMAND [ARG...]\n");
        return 2;
    }
    /* Blocked before the fork so that no signal is lost between it and the
     * wait loop; the child gets the old mask back. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    /* Outside a PID namespace of its own (pid: host) orphans still come here. */
    if (getpid() != 1)
        prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t child = fork();
    if (child < 0) {
        perror("docker-init: fork");
        return 1;
    }
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[first], argv + first);
        fprintf(stderr, "docker-init: exec %s: %s\n", argv[first], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            perror("docker-init: sigwaitinfo");
            return 1;
        }
        if (sig != SIGCHLD) {
            kill(child, sig);
            continue;
        }
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid == child)
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
    }
}
