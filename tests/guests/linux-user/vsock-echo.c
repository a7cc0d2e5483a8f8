/*
 * vsock-echo: a tiny Linux user program for typevisor's vsock tests, run
 * inside the guest's busybox initramfs (busybox has no vsock tool).
 *
 *   vsock-echo listen PORT
 *       Listens on AF_VSOCK port PORT (any CID), prints "LISTENING PORT",
 *       accepts one connection, echoes every byte back until the peer
 *       shuts down its sending side, then closes and exits.
 *   vsock-echo connect CID PORT MESSAGE
 *       Connects to CID:PORT, sends MESSAGE, shuts down its sending side,
 *       reads until EOF and prints "ECHO <bytes received>".
 *
 * Exit status 0 on success; errors are printed as "vsock-echo: ...".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

static int fail(const char *what)
{
	printf("vsock-echo: %s: %s\n", what, strerror(errno));
	return 1;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int listen_and_echo(unsigned port)
{
	struct sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
	int server = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (server < 0)
		return fail("socket");
	if (bind(server, (struct sockaddr *)&addr, sizeof addr) < 0)
		return fail("bind");
	if (listen(server, 1) < 0)
		return fail("listen");
	printf("LISTENING %u\n", port);
	fflush(stdout);
	int conn = accept(server, NULL, NULL);
	if (conn < 0)
		return fail("accept");
	char buf[4096];
	size_t total = 0;
	for (;;) {
		ssize_t n = read(conn, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail("read");
		if (n == 0)
			break;
		if (write_all(conn, buf, (size_t)n) < 0)
			return fail("write");
		total += (size_t)n;
	}
	printf("ECHOED %zu\n", total);
	close(conn);
	close(server);
	return 0;
}

static int connect_and_send(unsigned cid, unsigned port, const char *message)
{
	struct sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (fd < 0)
		return fail("socket");
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		return fail("connect");
	if (write_all(fd, message, strlen(message)) < 0)
		return fail("write");
	if (shutdown(fd, SHUT_WR) < 0)
		return fail("shutdown");
	char reply[4096];
	size_t got = 0;
	while (got < sizeof reply - 1) {
		ssize_t n = read(fd, reply + got, sizeof reply - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail("read");
		if (n == 0)
			break;
		got += (size_t)n;
	}
	reply[got] = '\0';
	printf("ECHO %s\n", reply);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "listen") == 0)
		return listen_and_echo((unsigned)strtoul(argv[2], NULL, 10));
	if (argc == 5 && strcmp(argv[1], "connect") == 0)
		return connect_and_send((unsigned)strtoul(argv[2], NULL, 10), (unsigned)strtoul(argv[3], NULL, 10), argv[4]);
	fprintf(stderr, "usage: vsock-echo listen PORT | vsock-echo connect CID PORT MESSAGE\n");
	return 2;
}
