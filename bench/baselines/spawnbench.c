/*
 * Cold-exec timer for CGI programs: spawns PROGRAM with a CGI environment, reads its
 * stdout to EOF, waits for it, and prints the median, p90 and mean wall time of RUNS runs
 * in microseconds. Usage: spawnbench RUNS PROGRAM
 */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: spawnbench RUNS PROGRAM\n");
        return 2;
    }
    int runs = atoi(argv[1]);
    char *prog = argv[2];
    char *envp[] = {
        "GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET", "SCRIPT_NAME=/cgi-bin/hello",
        "PATH_INFO=/", "QUERY_STRING=", "SERVER_NAME=127.0.0.1", "SERVER_PORT=8080",
        "SERVER_PROTOCOL=HTTP/1.1", "SERVER_SOFTWARE=spawnbench", "REMOTE_ADDR=127.0.0.1",
        "REMOTE_PORT=40000", "REQUEST_URI=/cgi-bin/hello/", "HTTP_HOST=127.0.0.1:8080",
        "HTTP_USER_AGENT=spawnbench", "HTTP_ACCEPT=*/*", "PATH=/usr/bin:/bin", NULL};
    char *args[] = {prog, NULL};
    double *t = malloc(sizeof(double) * runs);
    char buf[65536];
    long total = 0;
    for (int i = 0; i < runs; i++) {
        int fds[2];
        if (pipe(fds) != 0) return 1;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        posix_spawn_file_actions_addclose(&fa, fds[0]);
        posix_spawn_file_actions_addclose(&fa, fds[1]);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", 0, 0);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        pid_t pid;
        if (posix_spawn(&pid, prog, &fa, NULL, args, envp) != 0) {
            perror("posix_spawn");
            return 1;
        }
        close(fds[1]);
        ssize_t n;
        while ((n = read(fds[0], buf, sizeof buf)) > 0) total += n;
        close(fds[0]);
        int status;
        waitpid(pid, &status, 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        posix_spawn_file_actions_destroy(&fa);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "%s failed\n", prog);
            return 1;
        }
        t[i] = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
    }
    double sum = 0;
    for (int i = 0; i < runs; i++) sum += t[i];
    qsort(t, runs, sizeof(double), cmp);
    printf("%.1f %.1f %.1f %ld\n", t[runs / 2], t[runs * 9 / 10], sum / runs, total / runs);
    return 0;
}
