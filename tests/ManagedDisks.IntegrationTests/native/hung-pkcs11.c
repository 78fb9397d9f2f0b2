/*
 * hung-pkcs11: a PKCS#11 module that forwards every call to a real one (SoftHSM2 by default)
 * and, while a trigger file exists, blocks the calls that reach the token, the way an HSM
 * that stopped answering (network HSM partitioned, USB token wedged) blocks its callers.
 * Tests point a [[key_store]] module at it to see what a hung HSM does to the daemon.
 *
 * Environment (read by the process that loads the module):
 *   HUNG_PKCS11_MODULE   the real module (default /usr/lib/softhsm/libsofthsm2.so)
 *   HUNG_PKCS11_TRIGGER  while this file exists, the wrapped calls wait; without it nothing waits
 * Each call that starts waiting appends its name and a newline to TRIGGER.blocked, so a test
 * can await "the daemon is now inside a hung HSM call" instead of guessing with a sleep.
 *
 * Build: gcc -Wall -O2 -shared -fPIC $(pkg-config --cflags p11-kit-1) hung-pkcs11.c -o hung-pkcs11.so -ldl
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST real;
static CK_FUNCTION_LIST hung;
static pthread_once_t loaded = PTHREAD_ONCE_INIT;
static CK_RV load_result = CKR_GENERAL_ERROR;

static void announce(const char *function, const char *trigger)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s.blocked", trigger);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return;
    char line[128];
    int n = snprintf(line, sizeof line, "%s\n", function);
    if (write(fd, line, (size_t)n) != n) { /* the announcement is a courtesy; the hang is what matters */ }
    close(fd);
}

static void wait_while_hung(const char *function)
{
    const char *trigger = getenv("HUNG_PKCS11_TRIGGER");
    if (!trigger || access(trigger, F_OK) != 0) return;
    announce(function, trigger);
    const struct timespec tick = { 0, 20 * 1000 * 1000 };
    while (access(trigger, F_OK) == 0) nanosleep(&tick, NULL);
}

/* One wrapper per call that talks to the token: wait while hung, then forward. */
#define HUNG(name, params, args) \
    static CK_RV hung_##name params { wait_while_hung(#name); return real.name args; }

HUNG(C_Initialize, (void *init_args), (init_args))
HUNG(C_Finalize, (void *reserved), (reserved))
HUNG(C_GetSlotList, (CK_BBOOL present, CK_SLOT_ID *list, CK_ULONG *count), (present, list, count))
HUNG(C_GetSlotInfo, (CK_SLOT_ID slot, CK_SLOT_INFO *info), (slot, info))
HUNG(C_GetTokenInfo, (CK_SLOT_ID slot, CK_TOKEN_INFO *info), (slot, info))
HUNG(C_GetMechanismList, (CK_SLOT_ID slot, CK_MECHANISM_TYPE *list, CK_ULONG *count), (slot, list, count))
HUNG(C_GetMechanismInfo, (CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO *info), (slot, type, info))
HUNG(C_OpenSession, (CK_SLOT_ID slot, CK_FLAGS flags, void *app, CK_NOTIFY notify, CK_SESSION_HANDLE *session), (slot, flags, app, notify, session))
HUNG(C_CloseSession, (CK_SESSION_HANDLE session), (session))
HUNG(C_GetSessionInfo, (CK_SESSION_HANDLE session, CK_SESSION_INFO *info), (session, info))
HUNG(C_Login, (CK_SESSION_HANDLE session, CK_USER_TYPE user, unsigned char *pin, CK_ULONG pin_len), (session, user, pin, pin_len))
HUNG(C_Logout, (CK_SESSION_HANDLE session), (session))
HUNG(C_GetAttributeValue, (CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object, CK_ATTRIBUTE *templ, CK_ULONG count), (session, object, templ, count))
HUNG(C_FindObjectsInit, (CK_SESSION_HANDLE session, CK_ATTRIBUTE *templ, CK_ULONG count), (session, templ, count))
HUNG(C_FindObjects, (CK_SESSION_HANDLE session, CK_OBJECT_HANDLE *objects, CK_ULONG max, CK_ULONG *count), (session, objects, max, count))
HUNG(C_FindObjectsFinal, (CK_SESSION_HANDLE session), (session))
HUNG(C_EncryptInit, (CK_SESSION_HANDLE session, CK_MECHANISM *mechanism, CK_OBJECT_HANDLE key), (session, mechanism, key))
HUNG(C_Encrypt, (CK_SESSION_HANDLE session, unsigned char *data, CK_ULONG len, unsigned char *out, CK_ULONG *out_len), (session, data, len, out, out_len))
HUNG(C_DecryptInit, (CK_SESSION_HANDLE session, CK_MECHANISM *mechanism, CK_OBJECT_HANDLE key), (session, mechanism, key))
HUNG(C_Decrypt, (CK_SESSION_HANDLE session, unsigned char *data, CK_ULONG len, unsigned char *out, CK_ULONG *out_len), (session, data, len, out, out_len))

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **list);

static void load(void)
{
    const char *path = getenv("HUNG_PKCS11_MODULE");
    void *library = dlopen(path ? path : "/usr/lib/softhsm/libsofthsm2.so", RTLD_NOW | RTLD_LOCAL);
    if (!library) { fprintf(stderr, "hung-pkcs11: %s\n", dlerror()); return; }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(library, "C_GetFunctionList");
    CK_FUNCTION_LIST *list = NULL;
    if (!get || (load_result = get(&list)) != CKR_OK) return;
    real = *list;
    hung = real;
    hung.C_GetFunctionList = C_GetFunctionList;
#define USE(name) hung.name = hung_##name
    USE(C_Initialize); USE(C_Finalize); USE(C_GetSlotList); USE(C_GetSlotInfo); USE(C_GetTokenInfo);
    USE(C_GetMechanismList); USE(C_GetMechanismInfo); USE(C_OpenSession); USE(C_CloseSession);
    USE(C_GetSessionInfo); USE(C_Login); USE(C_Logout); USE(C_GetAttributeValue); USE(C_FindObjectsInit);
    USE(C_FindObjects); USE(C_FindObjectsFinal); USE(C_EncryptInit); USE(C_Encrypt); USE(C_DecryptInit); USE(C_Decrypt);
#undef USE
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **list)
{
    if (!list) return CKR_ARGUMENTS_BAD;
    pthread_once(&loaded, load);
    if (load_result != CKR_OK) return load_result;
    *list = &hung;
    return CKR_OK;
}
