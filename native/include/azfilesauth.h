/*
 * libazfilesauth: Microsoft's AzFilesAuthenticator C API (include/azfilesauth.h, release 1.0.11),
 * implemented by keyless. Same functions, signatures, return values and stdout output; see
 * native/azfilesauth.c for how. Unlike Microsoft's header this one is valid C as well as C++ (theirs
 * includes <string>), so C programs can use it; the macros keep Microsoft's names and values.
 */
#ifndef AZAUTHENTICATOR_H
#define AZAUTHENTICATOR_H

#ifndef __cplusplus
#include <stdbool.h>
#endif

#include "azfilesauthversion.h"

#define USER_AGENT "AzureFilesSmbAuth"
#define ACCEPT_TYPES "Accept: */*"
#define API_VERSION "x-ms-version: 2024-05-04"
#define AUTHORIZATION_HEADER "Authorization: Bearer "
#define X_MS_DATE_HEADER "x-ms-date: "
#define KRB5_CLIENT_PRINCIPAL "AzureFileClient"

#define CONFIG_FILE_PATH "/etc/azfilesauth/config.yaml"

#define DEFAULT_CURL_CONNECT_TIMEOUT 10L
#define DEFAULT_CURL_TOTAL_TIMEOUT 30L

#ifdef __cplusplus
extern "C" {
#endif

/* Get a Kerberos ticket for file_endpoint_uri (https://<account>.file.core.windows.net) with an OAuth
 * token for https://storage.azure.com and store it in the azfilesauth credential cache.
 * 0 on success (*credential_expires_in_seconds = the ticket's remaining lifetime), -1 on failure. */
int extern_smb_set_credential_oauth_token(char* file_endpoint_uri,
                                          char* auth_token,
                                          unsigned int* credential_expires_in_seconds);

/* Remove file_endpoint_uri's ticket: 0 (also when there was none), -1 on failure. */
int extern_smb_clear_credential(char* file_endpoint_uri);

/* Print the cifs tickets on stdout, as text or as JSON: 0, or -1 on failure. */
int extern_smb_list_credential(bool is_json);

/* The azfilesauth release this library reproduces ("1.0.11"); a static string, not to be freed. */
const char* extern_smb_version(void);

#ifdef __cplusplus
}
#endif

#endif /* AZAUTHENTICATOR_H */
