"""The GraphQL operations the plugin sends, as the W&B SDK writes them.

Each document keeps the SDK's operation name, variables and selection
(``core/api/graphql/*.graphql`` and ``wandb/sdk/internal/internal_api.py`` in
wandb/wandb; see PROTOCOL.md). The operation name is also sent as ``operationName``.
"""

from __future__ import annotations

__all__ = [
    "ARTIFACT_FILE_URLS",
    "ARTIFACT_MANIFEST",
    "COMMIT_ARTIFACT",
    "CREATE_ARTIFACT",
    "CREATE_ARTIFACT_FILES",
    "CREATE_ARTIFACT_MANIFEST",
    "RUNS",
    "RUN_HISTORY",
    "RUN_RESUME_STATUS",
    "RUN_STATE",
    "STOP_RUN",
    "UPSERT_BUCKET",
    "VIEWER",
]

VIEWER = """
query Viewer {
    viewer {
        id
        entity
        username
        email
        flags
        teams {
            edges {
                node {
                    name
                }
            }
        }
    }
}
"""

UPSERT_BUCKET = """
mutation UpsertBucket(
    $id: String,
    $name: String,
    $project: String,
    $entity: String,
    $groupName: String,
    $description: String,
    $displayName: String,
    $notes: String,
    $commit: String,
    $config: JSONString,
    $host: String,
    $debug: Boolean,
    $program: String,
    $repo: String,
    $jobType: String,
    $state: String,
    $sweep: String,
    $tags: [String!],
    $summaryMetrics: JSONString,
) {
    upsertBucket(input: {
        id: $id,
        name: $name,
        groupName: $groupName,
        modelName: $project,
        entityName: $entity,
        description: $description,
        displayName: $displayName,
        notes: $notes,
        config: $config,
        commit: $commit,
        host: $host,
        debug: $debug,
        jobProgram: $program,
        jobRepo: $repo,
        jobType: $jobType,
        state: $state,
        sweep: $sweep,
        tags: $tags,
        summaryMetrics: $summaryMetrics,
    }) {
        bucket {
            id
            name
            displayName
            description
            config
            sweepName
            project {
                id
                name
                entity {
                    id
                    name
                }
            }
            historyLineCount
        }
        inserted
    }
}
"""

RUN_RESUME_STATUS = """
query RunResumeStatus($project: String, $entity: String, $name: String!) {
    model(name: $project, entityName: $entity) {
        id
        name
        entity {
            id
            name
        }
        bucket(name: $name, missingOk: true) {
            id
            name
            summaryMetrics
            displayName
            logLineCount
            historyLineCount
            eventsLineCount
            historyTail
            eventsTail
            config
            tags
            notes
            wandbConfig(keys: ["t"])
        }
    }
}
"""

RUN_STATE = """
query RunState($project: String!, $entity: String!, $name: String!) {
    project(name: $project, entityName: $entity) {
        run(name: $name) {
            state
        }
    }
}
"""

STOP_RUN = """
mutation StopRun($id: ID!) {
    stopRun(input: {id: $id}) {
        success
    }
}
"""

RUNS = """
query Runs(
    $project: String!,
    $entity: String!,
    $cursor: String,
    $perPage: Int = 50,
    $order: String,
    $filters: JSONString,
) {
    project(name: $project, entityName: $entity) {
        internalId
        runCount(filters: $filters)
        readOnly
        runs(filters: $filters, after: $cursor, first: $perPage, order: $order) {
            edges {
                node {
                    projectId
                    ...RunFragment
                }
                cursor
            }
            pageInfo {
                endCursor
                hasNextPage
            }
        }
    }
}

fragment RunFragment on Run {
    id
    tags
    name
    displayName
    sweepName
    state
    config
    group
    jobType
    commit
    readOnly
    createdAt
    heartbeatAt
    description
    notes
    systemMetrics
    summaryMetrics
    historyLineCount
    user {
        name
        username
    }
    historyKeys
}
"""

RUN_HISTORY = """
query RunHistory($project: String!, $entity: String!, $name: String!, $samples: Int) {
    project(name: $project, entityName: $entity) {
        run(name: $name) {
            history(samples: $samples)
        }
    }
}
"""

CREATE_ARTIFACT = """
mutation CreateArtifact(
    $entityName: String!,
    $projectName: String!,
    $artifactTypeName: String!,
    $artifactCollectionName: String!,
    $runName: String,
    $digest: String!,
    $digestAlgorithm: ArtifactDigestAlgorithm!,
    $description: String,
    $aliases: [ArtifactAliasInput!],
    $metadata: JSONString,
    $clientID: ID,
    $sequenceClientID: ID,
    $enableDigestDeduplication: Boolean,
) {
    createArtifact(input: {
        entityName: $entityName,
        projectName: $projectName,
        artifactTypeName: $artifactTypeName,
        artifactCollectionName: $artifactCollectionName,
        runName: $runName,
        digest: $digest,
        digestAlgorithm: $digestAlgorithm,
        description: $description,
        aliases: $aliases,
        metadata: $metadata,
        clientID: $clientID,
        sequenceClientID: $sequenceClientID,
        enableDigestDeduplication: $enableDigestDeduplication,
    }) {
        artifact {
            id
            state
            artifactSequence {
                latestArtifact {
                    id
                }
            }
        }
    }
}
"""

CREATE_ARTIFACT_MANIFEST = """
mutation CreateArtifactManifest(
    $name: String!,
    $digest: String!,
    $artifactID: ID!,
    $baseArtifactID: ID,
    $entityName: String!,
    $projectName: String!,
    $runName: String,
    $includeUpload: Boolean!,
    $type: ArtifactManifestType = FULL,
) {
    createArtifactManifest(input: {
        name: $name,
        digest: $digest,
        artifactID: $artifactID,
        baseArtifactID: $baseArtifactID,
        entityName: $entityName,
        projectName: $projectName,
        runName: $runName,
        type: $type,
    }) {
        artifactManifest {
            id
            file {
                id
                name
                displayName
                uploadUrl @include(if: $includeUpload)
                uploadHeaders @include(if: $includeUpload)
            }
        }
    }
}
"""

CREATE_ARTIFACT_FILES = """
mutation CreateArtifactFiles(
    $storageLayout: ArtifactStorageLayout!,
    $artifactFiles: [CreateArtifactFileSpecInput!]!,
) {
    createArtifactFiles(input: {
        artifactFiles: $artifactFiles,
        storageLayout: $storageLayout,
    }) {
        files {
            edges {
                node {
                    id
                    name
                    displayName
                    uploadUrl
                    uploadHeaders
                    storagePath
                    uploadMultipartUrls {
                        uploadID
                        uploadUrlParts {
                            partNumber
                            uploadUrl
                        }
                    }
                    artifact {
                        id
                    }
                }
            }
        }
    }
}
"""

COMMIT_ARTIFACT = """
mutation CommitArtifact($artifactID: ID!) {
    commitArtifact(input: {artifactID: $artifactID}) {
        artifact {
            id
            digest
        }
    }
}
"""

ARTIFACT_MANIFEST = """
query ArtifactManifest($id: ID!) {
    artifact(id: $id) {
        currentManifest {
            id
            file {
                directUrl
            }
        }
    }
}
"""

ARTIFACT_FILE_URLS = """
query ArtifactFileURLsByManifestEntries(
    $id: ID!,
    $entries: [ArtifactManifestEntryInput!],
    $storageLayout: String!,
    $manifestVersion: String!,
) {
    artifact(id: $id) {
        filesByManifestEntries(
            storageLayout: $storageLayout,
            manifestVersion: $manifestVersion,
            entries: $entries,
        ) {
            pageInfo {
                hasNextPage
                endCursor
            }
            edges {
                node {
                    name
                    directUrl
                }
            }
        }
    }
}
"""
