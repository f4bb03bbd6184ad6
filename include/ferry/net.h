/* ferry/net.h: one outgoing TCP connection on the ferry loop, optionally in
 * TLS, for the core's XMPP link and for adapters (IRC) alike: resolve and
 * connect under one deadline, TLS with the certificate and the host name
 * checked, bytes in through a callback, bytes out through a bounded queue.
 * What the bytes mean (lines, XML) stays with the owner.
 *
 * Lifetime, as with libuv handles: ferry_net_connect() returns a connection
 * that the owner must end with ferry_net_close() exactly once, whatever
 * happened to it (also after closed()). No callback runs from inside a
 * ferry_net_* call; each runs from the loop. After ferry_net_close() only
 * its done callback runs, once the memory is freed. */
#ifndef FERRY_NET_H
#define FERRY_NET_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct ferry_net ferry_net_t;
typedef struct ferry_net_tls ferry_net_tls_t;

/* Statuses of closed() beside libuv's (UV_EOF: the server closed the
 * connection, UV_ECONNREFUSED, UV_ETIMEDOUT, UV_EAI_*: resolving failed...). */
#define FERRY_NET_ECERT (-30001) /* TLS: the certificate was not trusted */
#define FERRY_NET_ETLS (-30002)  /* TLS: the handshake or a record failed */

/* Bytes ferry_net_write() accepts beyond what the kernel has taken, unless
 * the options say otherwise. */
#define FERRY_NET_MAX_PENDING ((size_t)4 << 20)

typedef struct ferry_net_callbacks {
    /* The connection is open (after the TLS handshake, with TLS): writes may
     * begin. */
    void (*connected)(void *arg);
    /* Bytes from the server (decrypted with TLS), valid during the call. */
    void (*data)(void *arg, const char *buf, size_t len);
    /* The connection failed or the server closed it; called at most once,
     * and never after ferry_net_close(). STATUS as above; REASON a phrase
     * for logs and users, e.g. "cannot connect to irc.example:6697:
     * connection refused", "the server closed the connection". The owner
     * still calls ferry_net_close() (it may, from here). */
    void (*closed)(void *arg, int status, const char *reason);
} ferry_net_callbacks_t;

typedef struct ferry_net_options {
    const char *host;              /* name or address to connect to */
    int port;
    const ferry_net_tls_t *tls;    /* NULL: plain TCP */
    /* The name the server's certificate must carry, also sent as SNI
     * (not when it is an IP address); NULL: host. */
    const char *tls_name;
    /* Accept any certificate (IRC's verify_cert = false, for self-signed
     * servers). Encrypts, but proves nothing about the server. */
    int tls_no_verify;
    /* Bound on resolving, connecting and the TLS handshake together; 0: no
     * bound of ours (the system's TCP timeout). */
    uint64_t connect_timeout_ms;
    /* Bound on bytes written but not yet taken by the kernel; 0:
     * FERRY_NET_MAX_PENDING. */
    size_t max_pending;
} ferry_net_options_t;

/* Starts resolving and connecting; the result comes as connected() or
 * closed(). Copies what it keeps of OPTS. Never NULL (ferry/alloc.h). */
ferry_net_t *ferry_net_connect(uv_loop_t *loop, const ferry_net_options_t *opts,
                               const ferry_net_callbacks_t *cb, void *arg);

/* Queues LEN bytes (copied) for the server. 0: queued. UV_ENOBUFS: over the
 * bound, nothing queued, the connection stays open (the owner decides
 * whether a server that reads this slowly is worth keeping). UV_ENOTCONN:
 * not open yet, shut down, or closing. Any other error: the connection has
 * failed (now or before), with that status; closed() follows from the loop,
 * and ferry_net_failure() says why meanwhile. */
int ferry_net_write(ferry_net_t *conn, const void *data, size_t len);

/* Once the connection has failed (closed() is due or was called): the
 * reason closed() gets; NULL before. For an owner that learns of the
 * failure from ferry_net_write() and closes at once. */
const char *ferry_net_failure(const ferry_net_t *conn);

/* Bytes written and not yet taken by the kernel. */
size_t ferry_net_pending(const ferry_net_t *conn);

/* Bytes on the wire (after TLS) handed to the connection so far, and how
 * many of them the server's TCP has acknowledged. A byte's offset is
 * ferry_net_written() right after the write that carried it; it has reached
 * the server once ferry_net_acked() is past it. A server that is busy but
 * alive keeps acknowledging; one that stopped reading does not, once its
 * receive buffer is full. */
uint64_t ferry_net_written(const ferry_net_t *conn);
uint64_t ferry_net_acked(const ferry_net_t *conn);

/* After the queued bytes: TLS close_notify (with TLS), then the write side
 * of the socket is shut. Reading goes on: the server's close comes as
 * closed(UV_EOF). Later writes get UV_ENOTCONN. */
void ferry_net_shutdown(ferry_net_t *conn);

/* Closes at once (bytes still queued are dropped) and frees the connection;
 * then done(arg), from the loop, when done is not NULL. No other callback
 * after this. */
void ferry_net_close(ferry_net_t *conn, void (*done)(void *arg));

/* ---- TLS ---- */

typedef struct ferry_net_tls_options {
    const char *ca_file; /* PEM file of trusted certificates; NULL: the system's */
} ferry_net_tls_options_t;

/* A TLS client context (OpenSSL's SSL_CTX) to share between connections.
 * NULL on failure, with the reason in err. OPTS may be NULL. */
ferry_net_tls_t *ferry_net_tls_new(const ferry_net_tls_options_t *opts, char *err,
                                   size_t errlen);
/* May come before the connections made with it are closed: they hold a
 * reference of their own. */
void ferry_net_tls_free(ferry_net_tls_t *tls);

#endif
