//! Why a group request is refused: the group layer's errors, one per Kafka error code
//! the group code answers with. The api layer turns each into its Kafka error code
//! (`api::find_coordinator::group_code`); nothing below it knows the codes.

/// A refusal by the group coordinator or a group state machine. Plain data: the
/// caller puts it into its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupError {
    /// The group's offsets partition is still being recovered; the client retries.
    CoordinatorLoadInProgress,
    /// The offsets partition cannot be read or written, the group was deleted while
    /// the request waited, or the coordinator went away; the client looks the
    /// coordinator up again.
    CoordinatorNotAvailable,
    /// A classic JoinGroup whose protocol type or protocols the group cannot take (no
    /// protocol shared with every member), or a classic request for a group held by
    /// KIP-848 members; a SyncGroup naming another protocol type or name.
    InconsistentGroupProtocol,
    /// A classic JoinGroup (v4+) from a new member without group.instance.id: it must
    /// rejoin with the member id given in the response.
    MemberIdRequired,
    /// The member (or, for a static member, its instance id) is not in the group, or
    /// the group does not exist for a request naming a member.
    UnknownMemberId,
    /// A classic static member presents a member id that no longer holds its
    /// group.instance.id; or a KIP-848 static member leaves after a new incarnation
    /// took its instance id.
    FencedInstanceId,
    /// A classic request during the join phase, or a parked JoinGroup/SyncGroup
    /// superseded by a newer one or cut off by a new rebalance.
    RebalanceInProgress,
    /// A classic request (SyncGroup, Heartbeat, OffsetCommit) for another generation,
    /// or an OffsetCommit before v9 with a generation for an unknown group.
    IllegalGeneration,
    /// An OffsetCommit by a KIP-848 member at another member epoch than its current one.
    StaleMemberEpoch,
    /// A KIP-848 heartbeat with an epoch that is neither the member's current one nor
    /// its previous one (allowed only while it owns nothing outside its assignment).
    FencedMemberEpoch,
    /// A KIP-848 heartbeat asking for a server assignor the broker does not have.
    UnsupportedAssignor,
    /// A KIP-848 heartbeat with a member epoch below -2.
    InvalidRequest,
    /// A KIP-848 static member joins while its instance id is held by an active member.
    UnreleasedInstanceId,
    /// A KIP-848 join into a group already at `group.consumer.max.size` members.
    GroupMaxSizeReached,
    /// The group does not exist (OffsetCommit v9+, OffsetDelete, DeleteGroups,
    /// ConsumerGroupDescribe), or a KIP-848 request reaches a classic group that has
    /// members.
    GroupIdNotFound,
    /// DeleteGroups of a group with members, or OffsetDelete in a non-empty group that
    /// is not a consumer-protocol group.
    NonEmptyGroup,
    /// OffsetDelete of a partition of a topic the active group subscribes to.
    GroupSubscribedToTopic,
}
