/*
 * faultyfs: a FUSE file system that mirrors a folder and fails chosen byte ranges with EIO,
 * the way a disk with bad sectors fails them. Tests put the daemon's backing file here to see
 * what a real I/O error from the file system does to the daemon and its clients.
 *
 *   faultyfs SOURCE_DIR FAULTS_FILE MOUNTPOINT [fuse options]
 *
 * FAULTS_FILE has one fault per line, "read|write|rw OFFSET LENGTH" (bytes, decimal); it is
 * re-read whenever its inode, modification time or size changes (replace it by rename), so a
 * test changes faults while the daemon runs. A missing or empty file means no faults. Any
 * read/write that overlaps a range of its kind fails with EIO and transfers nothing.
 * Every file is opened with direct_io so the kernel page cache never answers for us.
 * Without -f, fuse_main forks only after the mount is in place: the caller waits for exit 0.
 * Build: gcc -Wall -O2 faultyfs.c $(pkg-config --cflags --libs fuse3) -o faultyfs
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <fuse.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_FAULTS 64
enum { FAULT_READ = 1, FAULT_WRITE = 2 };
struct fault { int kinds; off_t offset; off_t length; };

static char source[PATH_MAX];
static char faults_path[PATH_MAX];
static struct fault faults[MAX_FAULTS];
static int fault_count;
static struct timespec faults_mtime;
static off_t faults_size = -1;
static ino_t faults_inode;
static pthread_mutex_t faults_lock = PTHREAD_MUTEX_INITIALIZER;

static void real_path(char out[PATH_MAX], const char *path)
{
    snprintf(out, PATH_MAX, "%s%s", source, path);
}

/* Re-reads FAULTS_FILE if it changed. Called with faults_lock held. */
static void refresh_faults(void)
{
    struct stat st;
    if (stat(faults_path, &st) != 0) { fault_count = 0; faults_size = -1; return; }
    if (st.st_ino == faults_inode && st.st_size == faults_size && st.st_mtim.tv_sec == faults_mtime.tv_sec && st.st_mtim.tv_nsec == faults_mtime.tv_nsec) return;
    faults_inode = st.st_ino;
    faults_size = st.st_size;
    faults_mtime = st.st_mtim;
    fault_count = 0;
    FILE *f = fopen(faults_path, "r");
    if (!f) return;
    char kind[16];
    long long offset, length;
    while (fault_count < MAX_FAULTS && fscanf(f, "%15s %lld %lld", kind, &offset, &length) == 3) {
        int kinds = strcmp(kind, "read") == 0 ? FAULT_READ : strcmp(kind, "write") == 0 ? FAULT_WRITE : FAULT_READ | FAULT_WRITE;
        faults[fault_count++] = (struct fault){ kinds, offset, length };
    }
    fclose(f);
}

static int faulty(int kind, off_t offset, size_t size)
{
    int hit = 0;
    pthread_mutex_lock(&faults_lock);
    refresh_faults();
    for (int i = 0; i < fault_count && !hit; i++)
        hit = (faults[i].kinds & kind) && offset < faults[i].offset + faults[i].length && faults[i].offset < offset + (off_t)size;
    pthread_mutex_unlock(&faults_lock);
    return hit;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)conn;
    cfg->direct_io = 1;
    cfg->use_ino = 1;
    cfg->attr_timeout = 0;
    cfg->entry_timeout = 0;
    cfg->negative_timeout = 0;
    return NULL;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    if (fi) return fstat(fi->fh, st) == 0 ? 0 : -errno;
    char p[PATH_MAX]; real_path(p, path);
    return lstat(p, st) == 0 ? 0 : -errno;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset, struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)offset; (void)fi; (void)flags;
    char p[PATH_MAX]; real_path(p, path);
    DIR *dir = opendir(p);
    if (!dir) return -errno;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) fill(buf, e->d_name, NULL, 0, 0);
    closedir(dir);
    return 0;
}

static int fs_mkdir(const char *path, mode_t mode) { char p[PATH_MAX]; real_path(p, path); return mkdir(p, mode) == 0 ? 0 : -errno; }
static int fs_unlink(const char *path) { char p[PATH_MAX]; real_path(p, path); return unlink(p) == 0 ? 0 : -errno; }
static int fs_rmdir(const char *path) { char p[PATH_MAX]; real_path(p, path); return rmdir(p) == 0 ? 0 : -errno; }

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
    if (flags) return -EINVAL;
    char a[PATH_MAX], b[PATH_MAX]; real_path(a, from); real_path(b, to);
    return rename(a, b) == 0 ? 0 : -errno;
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (fi) return fchmod(fi->fh, mode) == 0 ? 0 : -errno;
    char p[PATH_MAX]; real_path(p, path);
    return chmod(p, mode) == 0 ? 0 : -errno;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    if (fi) return ftruncate(fi->fh, size) == 0 ? 0 : -errno;
    char p[PATH_MAX]; real_path(p, path);
    return truncate(p, size) == 0 ? 0 : -errno;
}

static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    if (fi) return futimens(fi->fh, tv) == 0 ? 0 : -errno;
    char p[PATH_MAX]; real_path(p, path);
    return utimensat(AT_FDCWD, p, tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    char p[PATH_MAX]; real_path(p, path);
    int fd = open(p, fi->flags, mode);
    if (fd < 0) return -errno;
    fi->fh = fd;
    return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
    char p[PATH_MAX]; real_path(p, path);
    int fd = open(p, fi->flags);
    if (fd < 0) return -errno;
    fi->fh = fd;
    return 0;
}

static int fs_read(const char *path, char *buf, size_t size, off_t offset, struct fuse_file_info *fi)
{
    (void)path;
    if (faulty(FAULT_READ, offset, size)) return -EIO;
    ssize_t n = pread(fi->fh, buf, size, offset);
    return n < 0 ? -errno : (int)n;
}

static int fs_write(const char *path, const char *buf, size_t size, off_t offset, struct fuse_file_info *fi)
{
    (void)path;
    if (faulty(FAULT_WRITE, offset, size)) return -EIO;
    ssize_t n = pwrite(fi->fh, buf, size, offset);
    return n < 0 ? -errno : (int)n;
}

static int fs_statfs(const char *path, struct statvfs *st)
{
    char p[PATH_MAX]; real_path(p, path);
    return statvfs(p, st) == 0 ? 0 : -errno;
}

static int fs_flush(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    /* close(dup()) reports a deferred write error as close() would, as passthrough does */
    int fd = dup(fi->fh);
    if (fd < 0) return -errno;
    return close(fd) == 0 ? 0 : -errno;
}

static int fs_release(const char *path, struct fuse_file_info *fi) { (void)path; close(fi->fh); return 0; }

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    return (datasync ? fdatasync(fi->fh) : fsync(fi->fh)) == 0 ? 0 : -errno;
}

static int fs_fallocate(const char *path, int mode, off_t offset, off_t length, struct fuse_file_info *fi)
{
    (void)path;
    return fallocate(fi->fh, mode, offset, length) == 0 ? 0 : -errno;
}

static off_t fs_lseek(const char *path, off_t offset, int whence, struct fuse_file_info *fi)
{
    (void)path;
    off_t r = lseek(fi->fh, offset, whence);
    return r < 0 ? -errno : r;
}

static const struct fuse_operations operations = {
    .init = fs_init, .getattr = fs_getattr, .readdir = fs_readdir, .mkdir = fs_mkdir, .unlink = fs_unlink,
    .rmdir = fs_rmdir, .rename = fs_rename, .chmod = fs_chmod, .truncate = fs_truncate, .utimens = fs_utimens,
    .create = fs_create, .open = fs_open, .read = fs_read, .write = fs_write, .statfs = fs_statfs,
    .flush = fs_flush, .release = fs_release, .fsync = fs_fsync, .fallocate = fs_fallocate, .lseek = fs_lseek,
};

int main(int argc, char *argv[])
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s SOURCE_DIR FAULTS_FILE MOUNTPOINT [fuse options]\n", argv[0]);
        return 2;
    }
    if (!realpath(argv[1], source)) { perror(argv[1]); return 2; }
    if (argv[2][0] == '/') snprintf(faults_path, sizeof faults_path, "%s", argv[2]);
    else if (!getcwd(faults_path, sizeof faults_path) || strlen(faults_path) + strlen(argv[2]) + 2 > sizeof faults_path) return 2;
    else { strcat(faults_path, "/"); strcat(faults_path, argv[2]); }
    /* fuse_main sees: program, mountpoint, options */
    argv[2] = argv[0];
    return fuse_main(argc - 2, argv + 2, &operations, NULL);
}
