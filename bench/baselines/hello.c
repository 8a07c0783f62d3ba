/* The floor: a minimal CGI program in C. */
#include <stdio.h>

int main(void) {
    fputs("Content-Type: text/plain\r\n\r\nHello, world!", stdout);
    return 0;
}
