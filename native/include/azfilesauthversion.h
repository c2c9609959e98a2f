/* The azfilesauth release whose interface keyless's libazfilesauth reproduces (keyless.smb.compat). */
#ifndef AZFILESAUTHVERSION_H
#define AZFILESAUTHVERSION_H
#define AZFILESAUTH_VERSION "1.0.11"
#endif
