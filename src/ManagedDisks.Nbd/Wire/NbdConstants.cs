namespace ManagedDisks.Nbd.Wire;

// Numbers from the NBD protocol specification (NetworkBlockDevice/nbd doc/proto.md).

internal static class NbdMagic
{
    public const ulong InitPasswd = 0x4e42444d41474943; // "NBDMAGIC"
    public const ulong IHaveOpt = 0x49484156454F5054;   // "IHAVEOPT"
    public const ulong OptionReply = 0x0003e889045565a9;
    public const uint Request = 0x25609513;
    public const uint SimpleReply = 0x67446698;
    public const uint StructuredReply = 0x668e33ef;
}

[Flags]
internal enum HandshakeFlags : ushort
{
    FixedNewstyle = 1 << 0,
    NoZeroes = 1 << 1,
}

[Flags]
internal enum ClientFlags : uint
{
    FixedNewstyle = 1 << 0,
    NoZeroes = 1 << 1,
}

internal enum NbdOption : uint
{
    ExportName = 1,
    Abort = 2,
    List = 3,
    PeekExport = 4,
    StartTls = 5,
    Info = 6,
    Go = 7,
    StructuredReply = 8,
    ListMetaContext = 9,
    SetMetaContext = 10,
    ExtendedHeaders = 11,
}

internal enum OptionReplyType : uint
{
    Ack = 1,
    Server = 2,
    Info = 3,
    MetaContext = 4,
    ErrUnsup = (1u << 31) + 1,
    ErrPolicy = (1u << 31) + 2,
    ErrInvalid = (1u << 31) + 3,
    ErrPlatform = (1u << 31) + 4,
    ErrTlsReqd = (1u << 31) + 5,
    ErrUnknown = (1u << 31) + 6,
    ErrShutdown = (1u << 31) + 7,
    ErrBlockSizeReqd = (1u << 31) + 8,
    ErrTooBig = (1u << 31) + 9,
}

internal enum InfoType : ushort
{
    Export = 0,
    Name = 1,
    Description = 2,
    BlockSize = 3,
}

[Flags]
internal enum TransmissionFlags : ushort
{
    HasFlags = 1 << 0,
    ReadOnly = 1 << 1,
    SendFlush = 1 << 2,
    SendFua = 1 << 3,
    Rotational = 1 << 4,
    SendTrim = 1 << 5,
    SendWriteZeroes = 1 << 6,
    SendDf = 1 << 7,
    CanMultiConn = 1 << 8,
    SendResize = 1 << 9,
    SendCache = 1 << 10,
    SendFastZero = 1 << 11,
}

internal enum NbdCommand : ushort
{
    Read = 0,
    Write = 1,
    Disconnect = 2,
    Flush = 3,
    Trim = 4,
    Cache = 5,
    WriteZeroes = 6,
    BlockStatus = 7,
}

[Flags]
internal enum CommandFlags : ushort
{
    None = 0,
    Fua = 1 << 0,
    NoHole = 1 << 1,
    DontFragment = 1 << 2,
    ReqOne = 1 << 3,
    FastZero = 1 << 4,
}

[Flags]
internal enum ReplyFlags : ushort
{
    None = 0,
    Done = 1 << 0,
}

internal enum ChunkType : ushort
{
    None = 0,
    OffsetData = 1,
    OffsetHole = 2,
    BlockStatus = 5,
    Error = (1 << 15) + 1,
    ErrorOffset = (1 << 15) + 2,
}

/// <summary>Error values on the wire (errno numbers as the protocol fixes them).</summary>
internal enum NbdError : uint
{
    None = 0,
    Perm = 1,
    Io = 5,
    NoMem = 12,
    Invalid = 22,
    NoSpace = 28,
    Overflow = 75,
    NotSupported = 95,
    Shutdown = 108,
}

internal static class NbdLimits
{
    /// <summary>The protocol's ceiling for any string (export names, error messages).</summary>
    public const int MaxString = 4096;

    /// <summary>Option payloads beyond this are a denial-of-service attempt (qemu CVE-2017-15119); we hang up.</summary>
    public const int MaxOptionLength = 64 * 1024;

    public const int RequestHeaderLength = 28;
    public const int SimpleReplyHeaderLength = 16;
    public const int ChunkHeaderLength = 20;
    public const int OptionHeaderLength = 16;
    public const int OptionReplyHeaderLength = 20;

    /// <summary>Meta context id handed out for base:allocation by SET_META_CONTEXT.</summary>
    public const uint BaseAllocationId = 1;
    public const string BaseAllocation = "base:allocation";
}
