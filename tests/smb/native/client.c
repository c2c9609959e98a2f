/* A C program using libazfilesauth as Microsoft documents it: header + -lazfilesauth.
 * Usage: client set <uri> (token on stdin) | client list [json] | client clear <uri> | client version */
#include <stdio.h>
#include <string.h>

#include "azfilesauth.h"

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "set") == 0) {
        char token[16384];
        size_t n = fread(token, 1, sizeof(token) - 1, stdin);
        token[n] = '\0';
        while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r'))
            token[--n] = '\0';
        unsigned int expires = 12345;
        int rc = extern_smb_set_credential_oauth_token(argv[2], token, &expires);
        printf("rc=%d expires=%u\n", rc, expires);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "list") == 0) {
        int rc = extern_smb_list_credential(argc >= 3);
        printf("rc=%d\n", rc);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "clear") == 0) {
        printf("rc=%d\n", extern_smb_clear_credential(argv[2]));
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "version") == 0) {
        printf("%s\n", extern_smb_version());
        return 0;
    }
    return 2;
}
