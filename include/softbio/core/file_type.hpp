// softbio/core/file_type.hpp — naming what a path is when it is not a regular file, for
// the messages of every reader (model files, images): "a named pipe (FIFO)", ...
#pragma once

#include <sys/stat.h>

namespace softbio {

inline const char* file_type_name(mode_t mode) {
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a named pipe (FIFO)";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "a special file";
}

}  // namespace softbio
