/* A minimal CGI echo in C: copies CONTENT_LENGTH bytes of stdin to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
    const char *cl = getenv("CONTENT_LENGTH");
    long long left = cl ? atoll(cl) : 0;
    static char buf[1 << 16];
    fputs("Content-Type: application/octet-stream\r\n\r\n", stdout);
    fflush(stdout);
    while (left > 0) {
        ssize_t n = read(0, buf, left < (long long)sizeof buf ? (size_t)left : sizeof buf);
        if (n <= 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(1, buf + off, n - off);
            if (w <= 0) return 1;
            off += w;
        }
        left -= n;
    }
    return 0;
}
