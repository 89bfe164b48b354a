/* A setuid-root program that waits to be killed. */
#include <unistd.h>
int main(void) {
    setuid(0);
    pause();
    return 0;
}
