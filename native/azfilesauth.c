/*
 * libazfilesauth.so.0: Microsoft's AzFilesAuthenticator C API (include/azfilesauth.h, release 1.0.11)
 * as a small shim over keyless.
 *
 * Each call spawns the helper `keyless-azfilesauth-lib <call> ...` (keyless.smb.libhelper) and waits for
 * it. The helper does what Microsoft's library does (same stdout lines, same 0 / -1) with keyless's code:
 * its output goes straight to the caller's stdout and stderr, its result comes back on a private pipe
 * (fd 3 in the helper) as "rc=<n> expires=<seconds>".
 *
 * Why a process and not keyless embedded here: the library is loaded with ctypes by Python programs
 * (Microsoft's manager and refresher among them). Embedding CPython in a library loaded into a running
 * CPython, or a second libkrb5 context and keyless's threads inside someone else's process, is fragile;
 * a child process shares nothing with the caller. posix_spawn is safe in multithreaded callers (no code
 * runs between fork and exec), ctypes releases the GIL around the call, and the token travels on a pipe,
 * never in argv or the environment (both readable in /proc).
 *
 * The helper is the path compiled in as KEYLESS_HELPER (scripts/install.sh sets it), or
 * $KEYLESS_AZFILESAUTH_HELPER.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "azfilesauth.h"

#ifndef KEYLESS_HELPER
#define KEYLESS_HELPER "/usr/local/bin/keyless-azfilesauth-lib"
#endif

#define EXPORT __attribute__((visibility("default")))
#define RESULT_FD 3
#define RESULT_FD_ENV "KEYLESS_AZFILESAUTH_RESULT_FD=3"

extern char **environ;

static const char *helper_path(void) {
    /* secure_getenv: in a setuid/setgid program the caller's environment must not pick the executable. */
    const char *path = secure_getenv("KEYLESS_AZFILESAUTH_HELPER");
    return (path && *path) ? path : KEYLESS_HELPER;
}

/* A copy of fd numbered 10 or above, close-on-exec; so no pipe end can be 0-3 when remapped. */
static int high_fd(int fd) {
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    return copy;
}

static void close_fd(int *fd) {
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Write all of data to fd without letting SIGPIPE kill the caller if the helper died early. */
static int write_all(int fd, const char *data, size_t len) {
    sigset_t pipe_set, old_set;
    int rc = 0;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -1;
            break;
        }
        data += n;
        len -= (size_t)n;
    }
    if (rc != 0 && errno == EPIPE) {
        /* Consume the SIGPIPE raised for this thread, so unblocking does not deliver it. */
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) > 0) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    return rc;
}

/* The caller's environment plus RESULT_FD_ENV, for the helper only. */
static char **helper_environ(void) {
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = calloc(n + 2, sizeof(char *));
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        env[i] = environ[i];
    env[n] = (char *)RESULT_FD_ENV;
    return env;
}

/*
 * Run the helper with argv, input on its stdin; returns its rc (0 or -1) and stores the expiry.
 * The result line, not the exit status, is authoritative: a caller that ignores SIGCHLD makes the
 * kernel reap the child before waitpid can see its status.
 */
static int run_helper(char *const argv[], const char *input, unsigned int *expires) {
    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
    char result[128];
    size_t used = 0;
    int rc = -1;
    pid_t pid;
    char **env = NULL;
    posix_spawn_file_actions_t actions;

    fflush(stdout); /* the caller's buffered output first, then the helper's */
    fflush(stderr);
    if (pipe(in_pipe) != 0 || pipe(out_pipe) != 0) {
        perror("libazfilesauth: pipe");
        goto out;
    }
    for (int i = 0; i < 2; i++) {
        in_pipe[i] = high_fd(in_pipe[i]);
        out_pipe[i] = high_fd(out_pipe[i]);
    }
    if (in_pipe[0] < 0 || in_pipe[1] < 0 || out_pipe[0] < 0 || out_pipe[1] < 0) {
        perror("libazfilesauth: fcntl");
        goto out;
    }
    env = helper_environ();
    if (!env)
        goto out;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], RESULT_FD);
    int spawned = posix_spawn(&pid, helper_path(), &actions, NULL, argv, env);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
        fprintf(stderr, "libazfilesauth: cannot run %s: %s (set KEYLESS_AZFILESAUTH_HELPER, or reinstall "
                        "keyless)\n", helper_path(), strerror(spawned));
        goto out;
    }
    close_fd(&in_pipe[0]);
    close_fd(&out_pipe[1]);
    if (input)
        write_all(in_pipe[1], input, strlen(input));
    close_fd(&in_pipe[1]);
    for (;;) {
        ssize_t n = read(out_pipe[0], result + used, sizeof(result) - 1 - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        used += (size_t)n;
        if (used == sizeof(result) - 1)
            break;
    }
    result[used] = '\0';
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    int helper_rc;
    unsigned long seconds;
    if (sscanf(result, "rc=%d expires=%lu", &helper_rc, &seconds) == 2) {
        rc = helper_rc == 0 ? 0 : -1;
        if (expires && rc == 0)
            *expires = (unsigned int)seconds;
    }
out:
    close_fd(&in_pipe[0]);
    close_fd(&in_pipe[1]);
    close_fd(&out_pipe[0]);
    close_fd(&out_pipe[1]);
    free(env);
    return rc;
}

EXPORT int extern_smb_set_credential_oauth_token(char *file_endpoint_uri, char *auth_token,
                                                 unsigned int *credential_expires_in_seconds) {
    /* src/azfilesauth.cpp smb_set_credential_oauth_token: zero the output first; an empty URI or token,
     * or no output pointer, is -1. */
    if (credential_expires_in_seconds)
        *credential_expires_in_seconds = 0;
    if (!file_endpoint_uri || !*file_endpoint_uri || !auth_token || !*auth_token ||
        !credential_expires_in_seconds)
        return -1;
    char *argv[] = {(char *)"keyless-azfilesauth-lib", (char *)"set", file_endpoint_uri, NULL};
    return run_helper(argv, auth_token, credential_expires_in_seconds);
}

EXPORT int extern_smb_clear_credential(char *file_endpoint_uri) {
    if (!file_endpoint_uri || !*file_endpoint_uri) {
        printf("file_endpoint_uri is empty\n");
        return -1;
    }
    char *argv[] = {(char *)"keyless-azfilesauth-lib", (char *)"clear", file_endpoint_uri, NULL};
    return run_helper(argv, NULL, NULL);
}

EXPORT int extern_smb_list_credential(bool is_json) {
    char *argv[] = {(char *)"keyless-azfilesauth-lib", (char *)"list", is_json ? (char *)"--json" : NULL,
                    NULL};
    return run_helper(argv, NULL, NULL);
}

EXPORT const char *extern_smb_version(void) {
    return AZFILESAUTH_VERSION;
}
