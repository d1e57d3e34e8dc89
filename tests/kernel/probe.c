/* The probe run inside containers by the differential tests (compiled static at test time).
 *
 * `probe TOPIC...` prints one JSON object: for each topic, what the process observes.
 * Topics: ids hostname caps status cwd env pid mounts rlimits oom net tty cgroup
 *         file:PATH write:PATH ls:PATH mkdir:PATH sysctl:KEY fork:N alloc:MIB sleep:S exit:N
 * The same binary under runc and crib-runtime must print the same thing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static int first = 1;

static void str(const char *s) {
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void key(const char *k) {
    printf(first ? "{" : ",");
    first = 0;
    str(k);
    putchar(':');
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void sorted_lines(char **lines, int n) {
    qsort(lines, n, sizeof(char *), cmp);
    putchar('[');
    for (int i = 0; i < n; i++) {
        if (i) putchar(',');
        str(lines[i]);
        free(lines[i]);
    }
    putchar(']');
}

static void read_file(const char *path) {
    char buf[4096];
    int fd = open(path, O_RDONLY);
    if (fd < 0) { printf("{\"errno\":%d}", errno); return; }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int err = errno;
    close(fd);
    if (n < 0) { printf("{\"errno\":%d}", err); return; }
    buf[n] = 0;
    while (n > 0 && buf[n - 1] == '\n') buf[--n] = 0;
    str(buf);
}

static void status_fields(const char **names) {
    char line[512];
    FILE *f = fopen("/proc/self/status", "r");
    putchar('{');
    int printed = 0;
    while (f && fgets(line, sizeof(line), f)) {
        for (const char **n = names; *n; n++) {
            size_t len = strlen(*n);
            if (!strncmp(line, *n, len) && line[len] == ':') {
                char *v = line + len + 1;
                while (*v == ' ' || *v == '\t') v++;
                v[strcspn(v, "\n")] = 0;
                if (printed++) putchar(',');
                str(*n);
                putchar(':');
                str(v);
            }
        }
    }
    if (f) fclose(f);
    putchar('}');
}

static void mounts(void) {
    /* mountinfo fields: id parent maj:min root mountpoint options ... - fstype source super */
    char line[4096], *lines[512];
    int n = 0;
    FILE *f = fopen("/proc/self/mountinfo", "r");
    while (f && n < 512 && fgets(line, sizeof(line), f)) {
        char *field[12] = {0};
        int i = 0;
        char *save = NULL;
        for (char *t = strtok_r(line, " \n", &save); t && i < 12; t = strtok_r(NULL, " \n", &save))
            field[i++] = t;
        char *fstype = NULL, prop[64] = "private";
        for (int j = 6; j < i; j++) {
            if (!strcmp(field[j], "-")) { if (j + 1 < i) fstype = field[j + 1]; break; }
            /* optional fields: peer group numbers differ per run, keep the kind only */
            if (!strncmp(field[j], "shared:", 7)) strcpy(prop, "shared");
            else if (!strncmp(field[j], "master:", 7)) strcpy(prop, "slave");
            else if (!strcmp(field[j], "unbindable")) strcpy(prop, "unbindable");
        }
        char *opts = field[5] ? field[5] : "";
        /* atime flavour depends on the host's mount, not on the runtime: drop it */
        char clean[256] = "";
        char *s2 = NULL;
        for (char *o = strtok_r(opts, ",", &s2); o; o = strtok_r(NULL, ",", &s2)) {
            if (strstr(o, "atime")) continue;
            if (*clean) strcat(clean, ",");
            strncat(clean, o, sizeof(clean) - strlen(clean) - 2);
        }
        char out[1024];
        snprintf(out, sizeof(out), "%s %s %s %s", field[4] ? field[4] : "?", fstype ? fstype : "?",
                 clean, prop);
        lines[n++] = strdup(out);
    }
    if (f) fclose(f);
    sorted_lines(lines, n);
}

static void list_dir(const char *path) {
    char *lines[1024];
    int n = 0;
    DIR *d = opendir(path);
    if (!d) { printf("{\"errno\":%d}", errno); return; }
    struct dirent *e;
    while ((e = readdir(d)) && n < 1024)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) lines[n++] = strdup(e->d_name);
    closedir(d);
    sorted_lines(lines, n);
}

int main(int argc, char **argv) {
    for (int a = 1; a < argc; a++) {
        char whole[512];
        snprintf(whole, sizeof(whole), "%s", argv[a]);
        char *t = argv[a], *arg = strchr(t, ':');
        if (arg) *arg++ = 0;
        if (!strcmp(t, "ids")) {
            gid_t groups[64];
            int n = getgroups(64, groups);
            key("ids");
            printf("{\"uid\":%d,\"gid\":%d,\"euid\":%d,\"egid\":%d,\"groups\":[", getuid(), getgid(),
                   geteuid(), getegid());
            for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", groups[i]);
            printf("]}");
        } else if (!strcmp(t, "hostname")) {
            struct utsname u;
            uname(&u);
            key("hostname");
            printf("{\"nodename\":");
            str(u.nodename);
            printf(",\"domainname\":");
            str(u.domainname);
            putchar('}');
        } else if (!strcmp(t, "caps")) {
            const char *names[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", NULL};
            key("caps");
            status_fields(names);
        } else if (!strcmp(t, "status")) {
            const char *names[] = {"NoNewPrivs", "Seccomp", "Umask", "NSpid", NULL};
            key("status");
            status_fields(names);
        } else if (!strcmp(t, "cwd")) {
            char buf[4096];
            key("cwd");
            str(getcwd(buf, sizeof(buf)) ? buf : "?");
        } else if (!strcmp(t, "env")) {
            char *lines[512];
            int n = 0;
            for (char **e = environ; *e && n < 512; e++) lines[n++] = strdup(*e);
            key("env");
            sorted_lines(lines, n);
        } else if (!strcmp(t, "pid")) {
            key("pid");
            printf("{\"pid\":%d,\"ppid\":%d}", getpid(), getppid());
        } else if (!strcmp(t, "mounts")) {
            key("mounts");
            mounts();
        } else if (!strcmp(t, "rlimits")) {
            int which[] = {RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_CORE, RLIMIT_STACK, RLIMIT_MEMLOCK};
            const char *names[] = {"nofile", "nproc", "core", "stack", "memlock"};
            key("rlimits");
            putchar('{');
            for (int i = 0; i < 5; i++) {
                struct rlimit r;
                getrlimit(which[i], &r);
                printf("%s\"%s\":[%lld,%lld]", i ? "," : "", names[i], (long long)r.rlim_cur,
                       (long long)r.rlim_max);
            }
            putchar('}');
        } else if (!strcmp(t, "oom")) {
            key("oom");
            read_file("/proc/self/oom_score_adj");
        } else if (!strcmp(t, "net")) {
            key("net");
            list_dir("/sys/class/net");
        } else if (!strcmp(t, "tty")) {
            key("tty");
            char *name = ttyname(0);
            printf("{\"stdin\":%d,\"stdout\":%d,\"name\":", isatty(0), isatty(1));
            str(name ? name : "");
            putchar('}');
        } else if (!strcmp(t, "cgroup")) {
            key("cgroup");
            read_file("/proc/self/cgroup");
        } else if (!strcmp(t, "file") && arg) {
            key(whole);
            read_file(arg);
        } else if (!strcmp(t, "sysctl") && arg) {
            char path[512];
            snprintf(path, sizeof(path), "/proc/sys/%s", arg);
            for (char *p = path + 10; *p; p++) if (*p == '.') *p = '/';
            key(whole);
            read_file(path);
        } else if (!strcmp(t, "ls") && arg) {
            key(whole);
            list_dir(arg);
        } else if (!strcmp(t, "write") && arg) {
            int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            key(whole);
            if (fd < 0) printf("{\"errno\":%d}", errno);
            else { printf("\"ok\""); close(fd); unlink(arg); }
        } else if (!strcmp(t, "mkdir") && arg) {
            key(whole);
            if (mkdir(arg, 0755) < 0) printf("{\"errno\":%d}", errno);
            else { printf("\"ok\""); rmdir(arg); }
        } else if (!strcmp(t, "fork") && arg) {
            int want = atoi(arg), ok = 0;
            pid_t kids[4096];
            for (int i = 0; i < want && i < 4096; i++) {
                pid_t p = fork();
                if (p == 0) { pause(); _exit(0); }
                if (p < 0) break;
                kids[ok++] = p;
            }
            for (int i = 0; i < ok; i++) { kill(kids[i], 9); waitpid(kids[i], NULL, 0); }
            key("forked");
            printf("%d", ok);
        } else if (!strcmp(t, "alloc") && arg) {
            size_t size = (size_t)atoi(arg) << 20;
            fflush(stdout);
            char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p != MAP_FAILED) for (size_t i = 0; i < size; i += 4096) p[i] = 1;
            key("alloc");
            printf("\"survived\"");
        } else if (!strcmp(t, "sleep") && arg) {
            fflush(stdout);
            sleep(atoi(arg));
        } else if (!strcmp(t, "exit") && arg) {
            if (!first) printf("}\n");
            fflush(stdout);
            _exit(atoi(arg));
        } else {
            key(t);
            printf("\"unknown topic\"");
        }
    }
    printf(first ? "{}\n" : "}\n");
    return 0;
}
